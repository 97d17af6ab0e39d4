"""What expiring sessions sets off at Stripe, so a sweep can say it before and after.

Each expiry makes Stripe send a ``checkout.session.expired`` event to every enabled webhook
endpoint listening for it (or for ``*``), and a session with
``after_expiration.recovery.enabled`` gets a recovery URL (in live mode, perhaps an e-mail to
its customer). A key that may not read webhook endpoints gets ``null`` and a note, never a
failure: the endpoints only describe the sweep, they do not decide it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from checkout_sweeper.errors import StripeProblem, SweepStopped
from checkout_sweeper.vocabulary import JsonObject

log = logging.getLogger("checkout_sweeper.engine")
EXPIRED_EVENT = "checkout.session.expired"
UNANSWERED = "the webhook endpoints could not be read ({problem})"
UNREAD = (
    "the webhook endpoints could not be read ({problem}); give the key Webhook Endpoints "
    "read to see which endpoints each expiry notifies"
)


def recovery_enabled(session: Mapping[str, Any]) -> bool:
    """Whether expiring this session makes Stripe create a recovery URL for it."""
    after = session.get("after_expiration") or {}
    recovery = after.get("recovery") if isinstance(after, Mapping) else None
    return bool(isinstance(recovery, Mapping) and recovery.get("enabled"))


def listening(endpoints: list[JsonObject]) -> list[JsonObject]:
    """The enabled endpoints that receive ``checkout.session.expired``, as ``{id, url}``."""
    return [
        {"id": endpoint.get("id"), "url": endpoint.get("url")}
        for endpoint in endpoints
        if endpoint.get("status") == "enabled"
        and {EXPIRED_EVENT, "*"} & set(endpoint.get("enabled_events") or ())
    ]


def read_endpoints(
    read: Callable[[], list[JsonObject]],
) -> tuple[list[JsonObject] | None, str | None]:
    """The listening endpoints, or ``None`` and a note saying why they are not known."""
    try:
        return listening(read()), None
    except (StripeProblem, SweepStopped) as problem:
        refused = "403" in str(problem) or "permission" in str(problem).lower()
        return None, (UNREAD if refused else UNANSWERED).format(problem=problem)


NOT_READ = "the webhook endpoints were not read: the sweep stopped first"
Endpoints = tuple[list[JsonObject] | None, str | None]  # what ``read_endpoints`` answers


class EndpointsReading:
    """``read_endpoints`` on a thread of its own, so a sweep lists its first page meanwhile.
    ``result`` waits for it and raises what it raised (a bug); a sweep interrupted does not
    wait, and the thread, a daemon, ends with its request or with the process."""

    def __init__(self, read: Callable[[], list[JsonObject]], name: str) -> None:
        self._answer: Endpoints = (None, NOT_READ)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(read,), name=name, daemon=True)
        self._thread.start()

    def _read(self, read: Callable[[], list[JsonObject]]) -> None:
        try:
            self._answer = read_endpoints(read)
        except BaseException as failure:  # a bug: logged here, and raised by ``result``
            log.error("reading the webhook endpoints failed", exc_info=failure)
            self._failure = failure

    @property
    def answer(self) -> Endpoints:
        """The endpoints if read by now, else ``None`` and a note saying they were not."""
        return self._answer

    def result(self) -> Endpoints:
        self._thread.join()
        if self._failure is not None:
            raise self._failure
        return self._answer


def side_effects(
    events: int, endpoints: list[JsonObject] | None, recovery: int, note: str | None
) -> JsonObject:
    """The ``side_effects`` object of a sweep's answer."""
    found: JsonObject = {
        "expired_events": events,
        "webhook_endpoints": endpoints,
        "recovery_sessions": recovery,
    }
    if note:
        found["note"] = note
    return found


def said(effects: JsonObject, *, done: bool = False) -> str:
    """One or two lines for a person: what the expiries send, and to where."""
    events, endpoints = effects["expired_events"], effects["webhook_endpoints"]
    verb = "sent" if done else "sends"
    if endpoints is None:
        where = "to every endpoint listening for it (the endpoints could not be read)"
    elif endpoints:
        where = "to " + ", ".join(str(e["url"]) for e in endpoints)
    else:
        where = "to no webhook endpoint (none listens for it)"
    lines = [f"Each expiry {verb} {EXPIRED_EVENT} ({events} events) {where}."]
    if effects["recovery_sessions"]:
        lines.append(
            f"{effects['recovery_sessions']} of the sessions have recovery enabled: Stripe "
            "makes each a recovery URL (in live mode, perhaps an e-mail to the customer)."
        )
    return "\n".join(lines)

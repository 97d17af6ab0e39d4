"""Idempotency keys as Stripe keeps them: the first answer is replayed for the same key and
parameters; the same key with other parameters, or while the first is running, is refused."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NotRequired, TypedDict

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.objects import StripeObject

MAX_KEY_LENGTH = 255
Answer = tuple[int, StripeObject]
Slot = tuple[bool, str, str]  # livemode, account, key


class _Saved(TypedDict):
    """A claimed key: pending until its answer is saved with it."""

    fingerprint: str
    pending: NotRequired[bool]
    status: NotRequired[int]
    body: NotRequired[StripeObject]


class IdempotencyStore:
    """Saved answers by (mode, account, key); callers pass the lock that guards the store."""

    def __init__(self) -> None:
        self._saved: dict[Slot, _Saved] = {}

    def keys(self) -> set[str]:
        return {slot[-1] for slot in self._saved}

    def clear(self) -> None:
        self._saved.clear()

    def begin(self, slot: Slot, fingerprint: str) -> Answer | None:
        """Claim ``slot`` for a new request, or return the answer saved for it."""
        key = slot[-1]
        if len(key) > MAX_KEY_LENGTH:
            raise StripeFault(
                400,
                f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters long.",
                type_="idempotency_error",
            )
        saved = self._saved.get(slot)
        if saved is None:
            self._saved[slot] = {"fingerprint": fingerprint, "pending": True}
            return None
        if saved["fingerprint"] != fingerprint:
            raise StripeFault(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type_="idempotency_error",
            )
        if saved.get("pending"):
            raise StripeFault(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                "going through). Please retry your request after a short wait.",
                code="idempotency_key_in_use",
            )
        return saved["status"], saved["body"]

    def abandon(self, slot: Slot) -> None:
        """Forget a claim whose request broke, so a retry can run it."""
        self._saved.pop(slot, None)

    def save(self, slot: Slot, fingerprint: str, answer: Answer) -> None:
        status, body = answer
        self._saved[slot] = {"fingerprint": fingerprint, "status": status, "body": body}


def run_once(
    store: IdempotencyStore,
    lock: AbstractContextManager[object],
    slot: Slot,
    fingerprint: str,
    execute: Callable[[], Answer],
) -> tuple[Answer, bool]:
    """The answer for ``slot``: replayed (True) or freshly executed and saved (False)."""
    with lock:
        replay = store.begin(slot, fingerprint)
    if replay is not None:
        return replay, True
    try:
        answer = execute()
    except StripeFault as fault:
        answer = (fault.status, {"error": fault.body})
    except BaseException:
        with lock:
            store.abandon(slot)
        raise
    with lock:
        store.save(slot, fingerprint, answer)
    return answer, False

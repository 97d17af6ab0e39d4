"""The one place that talks to the ``stripe`` SDK.

It turns SDK calls and SDK exceptions into the few facts the sweep engine reasons about: a page
of open sessions, an expired session, a session that was no longer open, a cursor that went
stale, an error worth retrying, and an error that ends the sweep. Nothing else in the project
imports ``stripe``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import stripe

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
KEY_PATTERN = re.compile(r"^(sk|rk)_(test|live)_\w+$")
_NOT_OPEN_STATUS = re.compile(r"status of `(\w+)`")
REQUEST_TIMEOUT_S = 30


class StripeProblem(Exception):
    """Base of the gateway's errors; ``message`` is safe to log (never holds the key)."""


class RetryableError(StripeProblem):
    """A 429, a 5xx, a 409 on a busy idempotency key, or a broken connection."""

    def __init__(
        self, message: str, *, rate_limited: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited
        self.retry_after_s = retry_after_s


class FatalStripeError(StripeProblem):
    """Stripe rejected the key, or answered in a way retrying cannot change."""


class SessionNotOpen(StripeProblem):
    """Expire refused because the session is ``complete`` or ``expired`` already."""

    def __init__(self, status: str) -> None:
        super().__init__(f"session is {status}")
        self.status = status


class SessionRejected(StripeProblem):
    """Expire refused for this session alone (unknown id, idempotency conflict, ...)."""

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class StaleCursor(StripeProblem):
    """The ``starting_after`` session no longer matches ``status=open``."""


@dataclass(frozen=True)
class SessionPage:
    sessions: list[dict[str, Any]]
    has_more: bool


def is_live_key(api_key: str) -> bool:
    return api_key.startswith(LIVE_KEY_PREFIXES)


def account_fingerprint(api_key: str, stripe_account: str | None = None) -> str:
    """A stable, non-secret name for the account a key acts on, for locks and audit rows."""
    digest = hashlib.sha256(f"{api_key}\0{stripe_account or ''}".encode()).hexdigest()[:16]
    mode = "live" if is_live_key(api_key) else "test"
    return f"{mode}:{digest}"


def _retry_after(headers: dict[str, str] | None) -> float | None:
    try:
        return float((headers or {}).get("retry-after", ""))
    except ValueError:
        return None


def _translate(err: stripe.StripeError) -> StripeProblem:
    status = err.http_status or 0
    should_retry = (err.headers or {}).get("stripe-should-retry")
    summary = f"Stripe {status or 'connection'} error: {err.user_message or type(err).__name__}"
    if isinstance(err, stripe.RateLimitError):
        return RetryableError(summary, rate_limited=True, retry_after_s=_retry_after(err.headers))
    if isinstance(err, stripe.APIConnectionError):
        return RetryableError(summary)
    if should_retry == "false" and status >= 409:
        return SessionRejected(summary, status)  # Stripe says a retry cannot help this call
    if should_retry == "true" or status >= 500 or status == 409:
        return RetryableError(summary, retry_after_s=_retry_after(err.headers))
    if isinstance(err, stripe.AuthenticationError | stripe.PermissionError):
        return FatalStripeError(summary)
    return SessionRejected(summary, status)


class StripeGateway:
    """Checkout Session calls for one API key (and optional connected account)."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        stripe_account: str | None = None,
    ) -> None:
        self.livemode = is_live_key(api_key)
        self.account = account_fingerprint(api_key, stripe_account)
        self._client = stripe.StripeClient(
            api_key,
            stripe_account=stripe_account,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,  # the engine retries, with its own pacing and backoff
            http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_S),
        )

    def list_open(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        created_before: int | None = None,
    ) -> SessionPage:
        params: dict[str, Any] = {"status": "open", "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        if created_before is not None:
            params["created"] = {"lt": created_before}
        try:
            page = self._client.v1.checkout.sessions.list(params)
        except stripe.InvalidRequestError as err:
            if starting_after and err.http_status in (400, 404):
                # Stripe says resource_missing on the cursor; other Stripes word it otherwise.
                # Either way the engine restarts without a cursor, and an error that is not
                # about the cursor comes back there and ends the sweep.
                raise StaleCursor(str(err.user_message)) from None
            raise _translate(err) from None
        except stripe.StripeError as err:
            raise _translate(err) from None
        return SessionPage([s.to_dict() for s in page.data], bool(page.has_more))

    def session_status(self, session_id: str) -> str:
        """The session's current status, to explain an expire refusal Stripe worded oddly."""
        try:
            return str(self._client.v1.checkout.sessions.retrieve(session_id).status)
        except stripe.StripeError as err:
            raise _translate(err) from None

    def expire(self, session_id: str, idempotency_key: str) -> None:
        try:
            self._client.v1.checkout.sessions.expire(
                session_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as err:
            found = _NOT_OPEN_STATUS.search(err.user_message or "")
            if err.http_status == 400 and found:
                raise SessionNotOpen(found.group(1)) from None
            raise _translate(err) from None
        except stripe.StripeError as err:
            raise _translate(err) from None

"""Every error the project raises on purpose, in one tree under one base class.

Callers catch the branch they can act on; a door (the HTTP view, a command) turns each branch
into its own status or exit code. The SDK's exceptions never leave ``stripe_api.py``: the
gateway translates them into the ``StripeProblem`` branch at that one boundary.

::

    SweeperError
    ├── ConfigError             a setting is missing, malformed or contradicts another
    ├── AuthError               a request cannot be attributed to a user (401 / 400)
    ├── UserError               a user cannot be added as asked (bad e-mail, taken, ...)
    ├── StripeProblem           what the gateway reports about one Stripe call
    │   ├── RetryableError      429, 5xx, 409 on a busy idempotency key, broken connection
    │   ├── FatalStripeError    key rejected, or an answer no retry can change
    │   ├── SessionNotOpen      expire refused: the session is complete or expired already
    │   ├── SessionRejected     expire refused for this session alone
    │   └── StaleCursor         the ``starting_after`` session no longer matches the filter
    ├── SweepError              a sweep could not run or did not finish
    │   ├── LiveModeRefused     a live-mode key without SWEEPER_ALLOW_LIVE_MODE
    │   ├── SweepStopped        no request may start: stopped, interrupted or past the deadline
    │   └── SweepAborted        the sweep ended early (carries what was done)
    │       ├── LeaseLost       the lease could not be renewed in time, or was taken
    │       └── SweepInterrupted  a signal (Ctrl-C, SIGTERM) stopped it
    ├── LeaseError              the one-sweep-per-account lease
    │   └── SweepInProgress     another sweep holds the account's lease
    ├── AuditError              the audit trail could not be written
    └── ApiError                an HTTP answer in the error envelope (status, message, headers)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkout_sweeper.engine.tally import SweepResult


class SweeperError(Exception):
    """Base of every error checkout-sweeper raises on purpose; ``str()`` is safe to show."""


# configuration and requests ---------------------------------------------------------------------
class ConfigError(SweeperError, ValueError):
    """A setting is missing, malformed or contradicts another; the message names it."""


class AuthError(SweeperError):
    """A request that cannot be attributed to a user: ``status`` is 401 or 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UserError(SweeperError):
    """A user cannot be added as asked; ``field`` names the offending input, if one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# Stripe ---------------------------------------------------------------------------------------
class StripeProblem(SweeperError):
    """Base of the gateway's errors; the message is safe to log (never holds the key)."""


class RetryableError(StripeProblem):
    """A 429, a 5xx, a 409 on a busy idempotency key, or a broken connection."""

    def __init__(
        self,
        message: str,
        *,
        rate_limited: bool = False,
        retry_after_s: float | None = None,
        lock_contention: bool = False,
    ) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited  # a 429 that says the rate is too high
        self.retry_after_s = retry_after_s
        self.lock_contention = lock_contention  # a 429 lock_timeout: an object was busy


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


# sweeps -----------------------------------------------------------------------------------------
class SweepError(SweeperError):
    """A sweep could not run, or stopped before it finished."""


LIVE_MODE_REFUSAL = (
    "The configured Stripe key is a live-mode key; set SWEEPER_ALLOW_LIVE_MODE=true to allow "
    "sweeps of live sessions."
)


class LiveModeRefused(SweepError):
    """A live-mode key without SWEEPER_ALLOW_LIVE_MODE: this cleanup is for development."""

    def __init__(self) -> None:
        super().__init__(LIVE_MODE_REFUSAL)


class SweepStopped(SweepError):
    """Raised inside the engine where a request was about to start after the sweep stopped."""


class SweepAborted(SweepError):
    """The sweep ended early: Stripe could not be used (key rejected, unreachable after every
    retry) or the lease was lost. ``result`` holds what was done before it stopped."""

    def __init__(self, message: str, result: SweepResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class LeaseLost(SweepAborted):
    """The lease was taken by another sweep, or could not be renewed before its deadline."""


class SweepInterrupted(SweepAborted):
    """A signal stopped the sweep; in-flight expires finished and were recorded."""


# leases and audit -------------------------------------------------------------------------------
class LeaseError(SweeperError):
    """The one-sweep-per-account lease could not be taken or kept."""


class SweepInProgress(LeaseError):
    """Another sweep holds this account's lease."""


class AuditError(SweeperError):
    """The audit trail could not be written."""


class ApiError(SweeperError):
    """Raised by a view to answer with the error envelope: ``code``, ``message``, headers."""

    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

"""Every error the project raises on purpose, in one tree under one base class.

Callers catch the branch they can act on. Each class carries what the doors need: its HTTP
status, whether its message may be shown to an HTTP caller (else the answer says only
``An unexpected error occurred.`` and the log says the rest) and the command line's exit code.
One Flask error handler (``web.envelopes``) and one click wrapper (``cli``) read them, so no
view or command maps errors by hand. The SDK's exceptions never leave ``stripe_api``: the
adapter translates them into the ``StripeProblem`` branch at that one boundary. SQLAlchemy's
never leave ``store``: ``store.database.translated`` turns them into ``DatabaseUnavailable``,
``StatementRefused`` and ``DuplicateRow``.

Each line gives a class's HTTP status and exit code; ``any`` (or ``2/3``) is set per
instance: a raise site picks a class, never a number. ``tests/test_structure.py`` holds the
drawing to the classes.

::

                                                                                         HTTP  exit
    SweeperError                                                                          500     3
    ├── ConfigError             a setting is missing, malformed or contradictory          500     2
    │   └── DatabaseUrlInvalid  DATABASE_URL names no database that can be opened         500     2
    ├── ScopeInvalid            a scope with bad fields (every one of them named)         400     2
    ├── TooManySchedules        a user keeps the most schedules allowed                   409     2
    ├── ScheduleInvalid         a period or cron expression that cannot be a schedule     400     2
    ├── AuthError               a request cannot be attributed to a user                  401     2
    │   └── UserIdClaimInvalid  the token's user id claim is missing or not an id         400     2
    ├── UserError               a user cannot be added as asked                           400     2
    ├── NotFound                no such user, sweep, session or schedule (or not theirs)  404     2
    ├── AlreadyEnded            the sweep ended already: nothing to cancel                409     2
    ├── CommandFailure          a command refuses or fails for its own reason             500     2
    │   ├── UsageRefused        cannot run as asked: an argument, a setting, no terminal  500     2
    │   ├── FolderUnusable      the data folder cannot be made (2) or written (3)         500   2/3
    │   └── AlreadySaid         said in the command's own words: the door only exits      500     1
    │       ├── Declined        the question before a sweep was answered no               500     1
    │       ├── SessionsLeftOpen  sessions failed or remain open                          500     1
    │       ├── InterruptedBeforeStart  Ctrl-C or SIGTERM before any session was expired  500   130
    │       ├── StillStopping   a canceled sweep had not stopped when the wait ended      500     3
    │       └── OutcomeShown    a stopped sweep or a fleet: the code of how it ended      500   any
    ├── StripeProblem           what the adapter reports about one Stripe call            500     3
    │   ├── RetryableError      429, 5xx, 409 on a busy idempotency key, lost connection  500     3
    │   ├── FatalStripeError    key rejected, or an answer no retry can change            500     3
    │   ├── SessionNotOpen      expire refused: the session is complete or expired        500     3
    │   ├── SessionRejected     expire refused for this session alone (Stripe's status)   any     3
    │   └── StaleCursor         the ``starting_after`` session is no longer open          500     3
    ├── SweepProblem            a sweep could not run or did not finish                   500     3
    │   ├── CustomerRefused     the user has a Stripe customer: the spec's 409            409     2
    │   ├── FleetEmpty          a fleet of every connected account, and there are none    409     2
    │   ├── FleetTooLarge       more accounts than one fleet sweeps                       400     2
    │   ├── LiveModeRefused     a live-mode key without SWEEPER_ALLOW_LIVE_MODE           403     2
    │   ├── SweepStopped        no request may start: stopped or past the deadline        500     3
    │   └── SweepAborted        the sweep ended early (carries what was done)             500     3
    │       ├── RateLimitStorm  429 on every request, for longer than the sweep waits     503     3
    │       ├── LeaseLost       the lease could not be renewed in time, or was taken      500     4
    │       ├── SweepInterrupted  a signal (Ctrl-C, SIGTERM) stopped it                   500   130
    │       └── SweepCanceled   its owner canceled the sweep                              500     1
    ├── LeaseError              the one-sweep-per-account lease                           409     4
    │   └── SweepInProgress     another sweep holds the account's lease                   409     4
    ├── AuditError              the audit trail could not be written                      500     5
    ├── StatementRefused        the database refused a statement (schema, permission)     500     3
    │   └── DuplicateRow        a row with the same unique key is there already           500     3
    ├── QuotaExceeded           the caller spent the calls of the window                  429     4
    ├── DependencyDown          a dependency cannot be used now (Retry-After)             503     3
    │   ├── DatabaseUnavailable  cannot be reached, or answered too late                  503     3
    │   ├── QueueUnavailable    the job queue's Redis cannot be reached                   503     3
    │   └── QuotaUnavailable    the per-user limits' storage cannot be reached            503     3
    └── ApiError                a view's own refusal of a request, in the error envelope  400     2
        ├── RequestInvalid      a query parameter, header or body that cannot be used     400     2
        ├── BodyTooLarge        a request body over the size the service reads            413     2
        ├── IdempotencyKeyReused  the key started a sweep with another body               422     2
        ├── MetricsTokenRequired  /metrics without its METRICS_TOKEN                      401     2
        └── MetricsLoopbackOnly  /metrics from off this host, with no METRICS_TOKEN set   403     2
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from checkout_sweeper.engine.tally import SweepResult


class ExitCode(IntEnum):
    """The command line's exit statuses (the product contract's section 5)."""

    OK = 0
    FAILED = 1  # sessions failed or remain open
    USAGE = 2  # bad arguments or configuration
    UNAVAILABLE = 3  # Stripe or the database could not be used
    BUSY = 4  # another sweep holds the account
    AUDIT = 5  # the audit trail could not be written
    PARTIAL = 6  # a fleet sweep: some accounts could not be swept, the others were
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class SweeperError(Exception):
    """Base of every error checkout-sweeper raises on purpose; ``str()`` is safe to log.

    ``http_status`` and ``exit_code`` are what the doors answer with; ``public`` says whether an
    HTTP caller may read the message (server-side failures are logged, not shown);
    ``headline`` prefixes the message on the command line."""

    http_status: int = 500
    public: ClassVar[bool] = False
    exit_code: int = ExitCode.UNAVAILABLE
    headline: ClassVar[str] = ""

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the answer."""
        return {}

    @property
    def public_message(self) -> str:
        """What an HTTP caller reads when ``public``: the message, unless the class says less
        (where the database lives is not the caller's to know)."""
        return str(self)


# configuration and requests ---------------------------------------------------------------------
class ConfigError(SweeperError, ValueError):
    """A setting is missing, malformed or contradicts another; the message names it."""

    exit_code = ExitCode.USAGE
    headline = "configuration"


class DatabaseUrlInvalid(ConfigError):
    """DATABASE_URL passed the settings' checks but names no database SQLAlchemy can open (a
    port that is not a number, a dialect it cannot load); the message names the variable."""

    headline = ""

    def __init__(self, cause: str) -> None:
        super().__init__(f"DATABASE_URL is not a database URL: {cause}")


class ScopeInvalid(SweeperError, ValueError):
    """A scope with bad fields: ``problems`` names each one (all of them at once)."""

    http_status = 400
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {why}" for name, why in problems.items()))


class TooManySchedules(SweeperError):
    """A user keeps as many schedules as ``SWEEPER_MAX_SCHEDULES`` allows."""

    http_status = 409
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, most: int) -> None:
        super().__init__(
            f"This user keeps {most} schedules already, the most allowed "
            "(SWEEPER_MAX_SCHEDULES); remove one first."
        )


class ScheduleInvalid(SweeperError, ValueError):
    """A period or cron expression that cannot be a schedule."""

    http_status = 400
    public = True
    exit_code = ExitCode.USAGE


class AuthError(SweeperError):
    """A request that cannot be attributed to a user: no token, or one that does not verify."""

    http_status = 401
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        return (
            {"WWW-Authenticate": 'Bearer realm="checkout-sweeper"'}
            if self.http_status == 401
            else {}
        )


class UserIdClaimInvalid(AuthError):
    """A token that verifies but names no user id: its claim is missing, or of another type
    (the spec's missing or malformed field, so a 400 rather than a challenge)."""

    http_status = 400


class UserError(SweeperError):
    """A user cannot be added as asked; ``field`` names the offending input, if one."""

    http_status = 400
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(SweeperError):
    """What the caller named (a user, a sweep, a session, a schedule) is not there, or is not
    theirs to see: the same answer either way, so ids cannot be probed."""

    http_status = 404
    public = True
    exit_code = ExitCode.USAGE


class AlreadyEnded(SweeperError):
    """A sweep asked to stop that has ended already: there is nothing to cancel."""

    http_status = 409
    public = True
    exit_code = ExitCode.USAGE


class CommandFailure(SweeperError):
    """A command refuses or fails for a reason of its own; the message is said in one line."""

    exit_code = ExitCode.USAGE


class UsageRefused(CommandFailure):
    """The command cannot run as asked: an argument it cannot use, a setting it needs, no
    terminal to ask its question on."""


class FolderUnusable(CommandFailure):
    """The data folder cannot be used. One that cannot be made is a setting to fix (exit 2);
    one that exists but cannot be written is the machine's state (exit 3)."""

    def __init__(self, folder: str, reason: str, *, exists: bool) -> None:
        super().__init__(
            f"the data folder {folder} cannot be used ({reason}); set SWEEPER_INSTANCE_PATH "
            "or DATABASE_URL to a place this user can write"
        )
        self.exit_code = ExitCode.UNAVAILABLE if exists else ExitCode.USAGE


class AlreadySaid(CommandFailure):
    """The command has told the user what happened in its own words (a summary, JSON, a
    line): the door says nothing more and ends it with the class's exit code."""

    exit_code = ExitCode.FAILED


class Declined(AlreadySaid):
    """The question before a sweep was answered no: nothing was expired."""


class SessionsLeftOpen(AlreadySaid):
    """The sweep ran to its end, and sessions failed or remain open (the summary says which)."""


class InterruptedBeforeStart(AlreadySaid):
    """Ctrl-C or SIGTERM while listing or at the question, before any session was expired."""

    exit_code = ExitCode.INTERRUPTED


class StillStopping(AlreadySaid):
    """A canceled sweep had not said it stopped when the command stopped waiting for it."""

    exit_code = ExitCode.UNAVAILABLE


class Ending(Protocol):
    """What ends a command with a code of its own: an error of this tree, a fleet's result."""

    @property
    def exit_code(self) -> int: ...


class OutcomeShown(AlreadySaid):
    """A sweep that stopped early, or a fleet sweep, shown with what it did: the command ends
    with the code of how it ended (interrupted, lease lost, Stripe, some accounts failed)."""

    def __init__(self, message: str, ended: Ending) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(ended.exit_code)


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
class SweepProblem(SweeperError):
    """A sweep could not run, or stopped before it finished."""


LIVE_MODE_REFUSAL = (
    "The configured Stripe key is a live-mode key; set SWEEPER_ALLOW_LIVE_MODE=true to allow "
    "sweeps of live sessions."
)


class LiveModeRefused(SweepProblem):
    """A live-mode key without SWEEPER_ALLOW_LIVE_MODE: this cleanup is for development."""

    http_status = 403
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self) -> None:
        super().__init__(LIVE_MODE_REFUSAL)


class SweepStopped(SweepProblem):
    """Raised inside the engine where a request was about to start after the sweep stopped."""


class SweepAborted(SweepProblem):
    """The sweep ended early: Stripe could not be used (key rejected, unreachable after every
    retry) or the lease was lost. ``result`` holds what was done before it stopped."""

    headline = "Stripe could not be used"

    def __init__(self, message: str, result: SweepResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class RateLimitStorm(SweepAborted):
    """Stripe refused every request (429) for longer than the sweep waits: a storm, not a
    limit; what is left stays open, and the caller may try again once it passes."""

    http_status = 503
    public = True
    headline = "Stripe refused every request"
    RETRY_AFTER_S = 60

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER_S)}


class LeaseLost(SweepAborted):
    """The lease was taken by another sweep, or could not be renewed before its deadline."""

    exit_code = ExitCode.BUSY
    headline = "stopped"


class SweepInterrupted(SweepAborted):
    """A signal stopped the sweep; in-flight expires finished and were recorded."""

    exit_code = ExitCode.INTERRUPTED
    headline = "interrupted"


class SweepCanceled(SweepAborted):
    """Its owner canceled the sweep; in-flight expires finished and were recorded."""

    exit_code = ExitCode.FAILED
    headline = "canceled"


# leases and audit -------------------------------------------------------------------------------
class CustomerRefused(SweepProblem):
    """The spec's rule: the cleanup is for users without a Stripe customer, on every door."""

    http_status = 409
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"This user already has a Stripe customer ({customer_id}); these cleanup sweeps "
            "are only for users without one."
        )


class FleetEmpty(SweepProblem):
    """A fleet of every connected account, when the key has none: nothing to sweep."""

    http_status = 409
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self) -> None:
        super().__init__(
            "The key has no connected accounts (Stripe's GET /v1/accounts lists none), so a "
            "fleet sweep has nothing to sweep; sweep the key's own account instead."
        )


class FleetTooLarge(SweepProblem):
    """More accounts than one fleet sweeps: one call of the quota covers a bounded fleet."""

    http_status = 400
    public = True
    exit_code = ExitCode.USAGE

    def __init__(self, count: int, most: int) -> None:
        super().__init__(
            f"A fleet sweeps at most {most} accounts; this one has {count}. Name the accounts "
            f"to sweep, {most} at a time."
        )


class LeaseError(SweeperError):
    """The one-sweep-per-account lease could not be taken or kept."""

    http_status = 409
    exit_code = ExitCode.BUSY


BUSY = "A sweep of this Stripe account is already running; try again when it ends."


class SweepInProgress(LeaseError):
    """Another sweep holds this account's lease. The operator reads which one (its id, host
    and process); an HTTP caller, who may not own it, reads only since when."""

    public = True

    def __init__(self, account: str = "", holder: str = "", since: str = "") -> None:
        super().__init__(BUSY.replace(";", f" ({holder});", 1) if holder else BUSY)
        self.account = account
        self.since = since

    @property
    def public_message(self) -> str:
        return BUSY.replace(";", f" (since {self.since});", 1) if self.since else BUSY


class AuditError(SweeperError):
    """The audit trail could not be written."""

    exit_code = ExitCode.AUDIT


class StatementRefused(SweeperError):
    """The database answered, and refused a statement: a schema or a permission that is not
    as expected, a constraint broken. Server-side: the caller reads only that it failed."""

    def __init__(self, where: str, cause: str) -> None:
        super().__init__(f"the database at {where} (DATABASE_URL) cannot be used: {cause}")
        self.cause = cause


class DuplicateRow(StatementRefused):
    """A row with the same unique key is there already: another process stored it first
    (a lease, an account, a user, a sweep under the same Idempotency-Key)."""


class DependencyDown(SweeperError):
    """A dependency of the service cannot be used now: nothing was started, nothing spent;
    callers may try again shortly."""

    http_status = 503
    public = True
    exit_code = ExitCode.UNAVAILABLE

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "30"}


class QueueUnavailable(DependencyDown):
    """The job queue's Redis cannot be reached: a queued sweep cannot be sent."""


class DatabaseUnavailable(DependencyDown):
    """The database cannot be reached, or did not answer within ``late_s`` seconds. The
    command line names it (password masked) and the driver's ``cause``; an HTTP caller reads
    only that nothing was started."""

    def __init__(self, where: str, cause: str, *, late_s: int | None = None) -> None:
        said = cause if late_s is None else f"no answer within {late_s} s"
        super().__init__(f"the database at {where} (DATABASE_URL) cannot be used: {said}")
        self.cause = cause
        self.late_s = late_s

    @property
    def public_message(self) -> str:
        if self.late_s is not None:
            late = f"The database did not answer within {self.late_s} s"
            return f"{late}, so nothing was started; try again."
        return "The database cannot be reached, so nothing was started; try again shortly."


class QuotaExceeded(SweeperError):
    """The caller has spent their calls of the window; the headers say when one is free."""

    http_status = 429
    public = True
    exit_code = ExitCode.BUSY

    def __init__(self, limit: str, headers: dict[str, str]) -> None:
        wait = headers.get("Retry-After")
        when = f"retry in {wait} s" if wait else "retry after the seconds in Retry-After"
        super().__init__(f"Rate limit exceeded ({limit}); {when}.")
        self._headers = headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


class QuotaUnavailable(DependencyDown):
    """The per-user limits' storage (Redis) cannot be reached: fail closed, start nothing."""


class ApiError(SweeperError):
    """Base of a view's own refusals of a request, answered in the error envelope with the
    message as written."""

    http_status = 400
    public = True
    exit_code = ExitCode.USAGE


class RequestInvalid(ApiError):
    """A query parameter, header or body the view cannot use as given; the message says
    which, and what it takes."""


class BodyTooLarge(ApiError):
    """A request body over the size the service reads (a bound on what a caller can make it
    parse)."""

    http_status = 413


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key already started a sweep with another body (Stripe's own rule)."""

    http_status = 422


class MetricsTokenRequired(ApiError):
    """``/metrics`` asked for without the Bearer token METRICS_TOKEN opens it with."""

    http_status = 401


class MetricsLoopbackOnly(ApiError):
    """``/metrics`` asked for from another host (or through a proxy) while no METRICS_TOKEN
    is set: without a token it answers this host alone."""

    http_status = 403

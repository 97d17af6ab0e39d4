"""The closed lists every layer speaks: a session's outcome, a run's status, what started it.

Each is declared here once; the engine, the audit rows, the API's schema and query checks, the
command line's choices and the metrics' labels all derive from these enums (their values are
plain strings on the wire and in the database). ``JsonObject`` names the one open shape.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]
"""A JSON object whose fields are not ours to close: a Stripe session as listed, a row or a
result as the API shows it. One name, so that such dicts are told apart from ones to type."""


class Outcome(StrEnum):
    """What happened to one session in a sweep."""

    EXPIRED = "expired"
    ALREADY_CLOSED = "already_closed"  # a customer paid, or it expired on its own: no failure
    FAILED = "failed"
    WOULD_EXPIRE = "would_expire"  # a dry run's only outcome
    UNKNOWN = "unknown"  # sent, but the sweep stopped before its answer: the next one settles it


class RunStatus(StrEnum):
    """Where a recorded sweep stands."""

    QUEUED = "queued"  # waiting for a worker of the job queue
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # nothing failed and nothing is left open
    INCOMPLETE = "incomplete"  # it finished, but sessions failed or remain open
    FAILED = "failed"  # Stripe could not be used
    INTERRUPTED = "interrupted"  # a signal, a lost lease, or its process died
    CANCELED = "canceled"  # its owner canceled it; never resumed
    PARTIAL = "partial"  # a fleet sweep: some accounts could not be swept, the others were


class Trigger(StrEnum):
    """Which door started a sweep."""

    API = "api"
    CLI = "cli"
    SCHEDULE = "schedule"


def values(kind: type[StrEnum]) -> list[str]:
    """The wire values of a closed list, in declaration order."""
    return [member.value for member in kind]

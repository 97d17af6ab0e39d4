"""What a fleet sweep did: one outcome per account, and the parent's sums and status.

The parent succeeds when every account's sweep did; it is ``partial`` when some accounts could
not be swept (they refused the platform, another sweep held them) while others were; ``failed``
when none could be; ``incomplete`` when every account was swept but sessions failed or remain
open; ``interrupted`` when it was stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from checkout_sweeper.engine.tally import SweepResult
from checkout_sweeper.errors import ExitCode
from checkout_sweeper.store.models import SweepRun
from checkout_sweeper.vocabulary import JsonObject, RunStatus

SAMPLE_CAP = 100  # open sessions shown across the fleet, as for one account


def fleet_status(statuses: set[str], interrupted: bool = False) -> str:
    """The parent's status from its children's (see the module's docstring)."""
    if interrupted or RunStatus.INTERRUPTED in statuses:
        return RunStatus.INTERRUPTED
    if RunStatus.CANCELED in statuses:
        return RunStatus.CANCELED
    if statuses <= {RunStatus.SUCCEEDED}:
        return RunStatus.SUCCEEDED
    if statuses <= {RunStatus.FAILED}:
        return RunStatus.FAILED
    if RunStatus.FAILED in statuses:
        return RunStatus.PARTIAL
    return RunStatus.INCOMPLETE


class AccountAnswer(TypedDict):
    """One account in a fleet's answer."""

    account: str
    sweep_id: str | None
    status: str
    error: str | None
    expired_count: int
    already_closed_count: int
    failed_count: int
    would_expire_count: int
    remaining_open_count: int | None
    out_of_scope_open_count: int | None
    side_effects: NotRequired[JsonObject | None]  # as for one account; None: stopped early


class FailedAccount(TypedDict):
    account: str
    error: str | None


class FleetAnswer(TypedDict):
    """The parent's answer: what the endpoint returns and the parent row keeps."""

    sweep_id: str
    status: str
    dry_run: bool
    accounts: list[AccountAnswer]
    failed_accounts: list[FailedAccount]
    expired_count: int
    already_closed_count: int
    failed: list[dict[str, str]]  # each session that failed, with its account
    would_expire_count: int
    remaining_open_count: int | None
    out_of_scope_open_count: int | None
    remaining_open_sessions: list[dict[str, object]]  # Stripe's objects, with their account
    stripe_requests: int
    rate_limited: int
    scope: dict[str, object]
    duration_ms: int
    side_effects: NotRequired[JsonObject]  # summed over the accounts; endpoints with their account
    would_expire: NotRequired[list[dict[str, str]]]  # a dry run's: each session, with its account


@dataclass
class AccountOutcome:
    """One account's sweep: its child run, how it ended, and why when it could not run."""

    account: str
    sweep_id: str | None
    status: str
    result: SweepResult | None = None
    error: str | None = None

    def as_dict(self) -> AccountAnswer:
        result = self.result
        return {
            "account": self.account,
            "sweep_id": self.sweep_id,
            "status": self.status,
            "error": self.error,
            "expired_count": result.expired_count if result else 0,
            "already_closed_count": result.already_closed_count if result else 0,
            "failed_count": len(result.failed) if result else 0,
            "would_expire_count": len(result.would_expire) if result else 0,
            "remaining_open_count": result.remaining_open_count if result else None,
            "out_of_scope_open_count": result.out_of_scope_open_count if result else None,
            "side_effects": result.side_effects if result else None,
        }


def outcome_of_child(child: SweepRun) -> AccountOutcome:
    """A child run's row as its account's outcome: the answer it recorded, or, for a child
    stopped early, the counts its rows hold (what it did before it stopped)."""
    result = SweepResult.from_data(json.loads(child.result)) if child.result else None
    if result is None and child.started_at is not None and child.status != RunStatus.FAILED:
        result = SweepResult(
            child.id,
            child.dry_run,
            expired_count=child.expired_count,
            already_closed_count=child.already_closed_count,
            stripe_requests=child.stripe_requests,
        )
    return AccountOutcome(child.stripe_account or "", child.id, child.status, result, child.error)


@dataclass
class FleetResult:
    sweep_id: str
    dry_run: bool
    accounts: list[AccountOutcome] = field(default_factory=list)
    scope: dict[str, object] = field(default_factory=dict)
    duration_ms: int = 0
    interrupted: bool = False

    @property
    def status(self) -> str:
        return fleet_status({outcome.status for outcome in self.accounts}, self.interrupted)

    @property
    def exit_code(self) -> int:
        return {
            RunStatus.SUCCEEDED: ExitCode.OK,
            RunStatus.INCOMPLETE: ExitCode.FAILED,
            RunStatus.PARTIAL: ExitCode.PARTIAL,
            RunStatus.FAILED: ExitCode.UNAVAILABLE,
        }.get(RunStatus(self.status), ExitCode.INTERRUPTED)

    def _results(self) -> list[tuple[str, SweepResult]]:
        return [(o.account, o.result) for o in self.accounts if o.result is not None]

    def as_data(self) -> FleetAnswer:
        """The parent's answer: every account, then sums over the accounts that ran."""
        results = self._results()
        remaining = [r.remaining_open_count for _, r in results]
        out_of_scope = [r.out_of_scope_open_count for _, r in results]
        sample = [
            {**session, "account": account}
            for account, r in results
            for session in r.remaining_open_sessions
        ]
        answer: FleetAnswer = {
            "sweep_id": self.sweep_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "accounts": [outcome.as_dict() for outcome in self.accounts],
            "failed_accounts": [
                {"account": o.account, "error": o.error}
                for o in self.accounts
                if o.status == RunStatus.FAILED
            ],
            "expired_count": sum(r.expired_count for _, r in results),
            "already_closed_count": sum(r.already_closed_count for _, r in results),
            "failed": [{**failure, "account": a} for a, r in results for failure in r.failed],
            "would_expire_count": sum(len(r.would_expire) for _, r in results),
            "remaining_open_count": _sum_known(remaining),
            "out_of_scope_open_count": _sum_known(out_of_scope),
            "remaining_open_sessions": sample[:SAMPLE_CAP],
            "stripe_requests": sum(r.stripe_requests for _, r in results),
            "rate_limited": sum(r.rate_limited for _, r in results),
            "scope": self.scope,
            "duration_ms": self.duration_ms,
            "side_effects": _summed_side_effects(results),
        }
        if self.dry_run:
            answer["would_expire"] = [
                {"id": session_id, "account": account}
                for account, r in results
                for session_id in r.would_expire
            ]
        return answer


def _summed_side_effects(results: list[tuple[str, SweepResult]]) -> JsonObject:
    known = [(account, r.side_effects) for account, r in results if r.side_effects is not None]
    unsaid = [r for _, r in results if r.side_effects is None]  # stopped early: its count
    return summed_side_effects(known, sum(r.expired_count for r in unsaid), len(unsaid))


def summed_side_effects(
    known: list[tuple[str, JsonObject]], other_events: int = 0, unsaid: int = 0
) -> JsonObject:
    """The accounts' ``side_effects`` as one: events and recovery sessions added up, each
    listening endpoint with its account (``null``, with a note, when any account's could not
    be read, or ``unsaid`` accounts stopped before they said; ``other_events`` theirs)."""
    unread = [account for account, e in known if e["webhook_endpoints"] is None]
    summed: JsonObject = {
        "expired_events": sum(int(e["expired_events"]) for _, e in known) + other_events,
        "webhook_endpoints": None
        if unread or unsaid
        else [{**endpoint, "account": a} for a, e in known for endpoint in e["webhook_endpoints"]],
        "recovery_sessions": sum(int(e["recovery_sessions"]) for _, e in known),
    }
    if unread or unsaid:
        summed["note"] = (
            f"the webhook endpoints of {len(unread) + unsaid} of the accounts are not known "
            "(each account's side_effects says why)"
        )
    return summed


def _sum_known(counts: list[int | None]) -> int | None:
    """The sum, or None (unknown) when any of them is."""
    known = [count for count in counts if count is not None]
    return sum(known) if len(known) == len(counts) else None

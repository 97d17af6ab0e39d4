"""A run as its readers see it: one ``sweep_runs`` row, typed, with the JSON the API shows.

A ``RunView`` is read inside the session that loaded the row and outlives it, so doors and
use cases hold typed values rather than a dict of whatever the row held. ``as_json`` is the
object ``GET /v1/sweeps`` lists and ``history --json`` prints, key for key and in that order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property

from checkout_sweeper.store.models import SweepRun, utc_iso
from checkout_sweeper.vocabulary import RunStatus

JsonObject = dict[str, object]


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


@dataclass(frozen=True)
class Worker:
    """The process running a run now, or the one that ran it last."""

    host: str
    pid: int | None

    def as_json(self) -> JsonObject:
        return {"host": self.host, "pid": self.pid}


@dataclass(frozen=True)
class RunView:
    """One run as read: the columns its readers use and what they derive from them (its
    duration, its worker). A snapshot, not the row: changes go through ``runs.rows``."""

    id: str
    status: str
    trigger: str
    user_id: int | None
    removed_user_id: int | None  # who started it, kept once that user was removed
    removed_user_email: str | None
    account: str
    livemode: bool
    dry_run: bool
    started_at: datetime  # with its zone, as every moment here
    finished_at: datetime | None
    duration_s: float | None
    expired_count: int
    already_closed_count: int
    failed_count: int
    remaining_count: int | None
    found_count: int
    listing_complete: bool
    stripe_requests: int
    error: str | None
    host: str | None  # where it runs or last ran, kept while it waits again
    pid: int | None
    worker: Worker | None  # the host and pid, None while it waits in a queue
    attempts: int
    queued_at: datetime | None
    scope: JsonObject  # as resolved when it first ran; {} for every open session
    schedule_id: str | None
    parent_id: str | None  # a fleet's child
    fleet: bool  # a fleet's parent
    stripe_account: str | None  # the connected account it acts on
    request_fingerprint: str | None = field(default=None, repr=False)
    stored_result: str | None = field(default=None, repr=False)  # the answer, as JSON

    @classmethod
    def of(cls, row: SweepRun) -> RunView:
        """The row as it is now; call it inside the session that loaded the row."""
        worker = None
        if row.status != RunStatus.QUEUED and row.host is not None:
            worker = Worker(row.host, row.pid)
        return cls(
            id=row.id,
            status=row.status,
            trigger=row.trigger,
            user_id=row.user_id,
            removed_user_id=row.removed_user_id,
            removed_user_email=row.removed_user_email,
            account=row.account,
            livemode=row.livemode,
            dry_run=row.dry_run,
            started_at=_aware(row.started_at),
            finished_at=_aware_or_none(row.finished_at),
            duration_s=row.duration_s,
            expired_count=row.expired_count,
            already_closed_count=row.already_closed_count,
            failed_count=row.failed_count,
            remaining_count=row.remaining_count,
            found_count=row.found_count,
            listing_complete=row.listing_complete,
            stripe_requests=row.stripe_requests,
            error=row.error,
            host=row.host,
            pid=row.pid,
            worker=worker,
            attempts=row.attempts,
            queued_at=_aware_or_none(row.queued_at),
            scope=json.loads(row.scope) if row.scope else {},
            schedule_id=row.schedule_id,
            parent_id=row.parent_id,
            fleet=row.fleet,
            stripe_account=row.stripe_account,
            request_fingerprint=row.request_fingerprint,
            stored_result=row.result,
        )

    @cached_property
    def result(self) -> JsonObject | None:
        """The endpoint's answer, once the sweep finished with one; read when first asked."""
        if not self.stored_result:
            return None
        answer: JsonObject = json.loads(self.stored_result)
        return answer

    def rate(self, now: float) -> float:
        """Sessions expired per second so far (``now`` in epoch seconds, while it runs)."""
        elapsed = (self.duration_s or now - self.started_at.timestamp()) or 0.0
        return round(self.expired_count / elapsed, 2) if elapsed > 0 else 0.0

    def as_json(self) -> JsonObject:
        """The run as ``GET /v1/sweeps`` lists it and ``history show --json`` prints it."""
        return {
            "id": self.id,
            "status": self.status,
            "trigger": self.trigger,
            "user_id": self.user_id,
            "removed_user_id": self.removed_user_id,
            "removed_user_email": self.removed_user_email,
            "account": self.account,
            "livemode": self.livemode,
            "dry_run": self.dry_run,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "duration_s": self.duration_s,
            "expired_count": self.expired_count,
            "already_closed_count": self.already_closed_count,
            "failed_count": self.failed_count,
            "remaining_count": self.remaining_count,
            "found_count": self.found_count,
            "listing_complete": self.listing_complete,
            "stripe_requests": self.stripe_requests,
            "error": self.error,
            "host": self.host,
            "pid": self.pid,
            "worker": self.worker.as_json() if self.worker else None,
            "attempts": self.attempts,
            "queued_at": utc_iso(self.queued_at),
            "scope": self.scope,
            "schedule_id": self.schedule_id,
            "parent_id": self.parent_id,
            "fleet": self.fleet,
            "stripe_account": self.stripe_account,
        }

    def shown(self, children: Sequence[RunView], now: float) -> JsonObject:
        """As ``GET /v1/sweeps/{id}`` shows it: with its answer, its rate so far and a
        fleet's children. A fleet's parent that has not ended counts what its children have
        done so far (its own row is written when the last one ends)."""
        view = summed(self, children) if self.fleet and self.status in LIVE else self
        return {
            **view.as_json(),
            "result": self.result,
            "rate": view.rate(now),
            "children": [child.as_json() for child in children],
        }


LIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
SUMMED = ("expired_count", "already_closed_count", "failed_count", "found_count")


def summed(parent: RunView, children: Sequence[RunView]) -> RunView:
    """The parent with its children's counters added up (Stripe requests too)."""
    sums = {name: sum(getattr(child, name) for child in children) for name in SUMMED}
    requests = sum(child.stripe_requests for child in children)
    return replace(parent, **sums, stripe_requests=requests)


@dataclass(frozen=True)
class CountedRun:
    """A run as ``history`` lists it: ``records`` of its outcomes are rows in the database,
    ``pending`` more are known to its counters only (a journal still to import)."""

    run: RunView
    records: int
    pending: int

    def as_json(self) -> JsonObject:
        """As ``history --json`` prints it."""
        return {**self.run.as_json(), "records": self.records, "pending": self.pending}

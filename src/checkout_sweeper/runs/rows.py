"""The audit tables as the recorder and the journal import write them.

Session rows are inserted with "on conflict do nothing" on (run, session), so a batch written
twice (a retry after a lost commit, a journal imported while its writer also wrote) never
doubles a row; a run's counts are recounted from its rows when it closes, so they always agree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from checkout_sweeper.runs.journal import OutcomeEntry
from checkout_sweeper.runs.lease import holder_is_dead, process_is_dead
from checkout_sweeper.runs.run import CountedRun, RunView
from checkout_sweeper.store.database import Database, rows_changed
from checkout_sweeper.store.models import SweepLock, SweepRun, SweptSession, utc_iso, utcnow
from checkout_sweeper.vocabulary import Outcome, RunStatus

# the run row's counters (unknown outcomes are rows only, until the next sweep settles them)
COUNTED = {
    outcome.value: f"{outcome.value}_count"
    for outcome in (Outcome.EXPIRED, Outcome.ALREADY_CLOSED, Outcome.FAILED)
}


def outcome_entry(
    session_id: str, outcome: str, error: str | None, attempts: int, *, at: object = None
) -> OutcomeEntry:
    """A journal line and a row's values in one shape; ``at`` (epoch seconds) is now unless
    given."""
    return {
        "kind": "outcome",
        "session_id": session_id,
        "outcome": outcome,
        "error": error,
        "attempts": attempts,
        "at": at if isinstance(at, (int, float)) else time.time(),
    }


STILL_OPEN = "still open after the sweep stopped: a later sweep expired it"


def insert_outcomes(session: Session, run_id: str, entries: Sequence[OutcomeEntry]) -> None:
    if not entries:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "run_id": run_id,
            "session_id": e["session_id"],
            "outcome": e["outcome"],
            "error": e.get("error"),
            "attempts": e.get("attempts", 1),
            "recorded_at": datetime.fromtimestamp(e.get("at", time.time()), tz=UTC),
        }
        for e in entries
    ]
    statement = insert(SweptSession)
    undecided = (SweptSession.outcome == Outcome.UNKNOWN) | (SweptSession.error == STILL_OPEN)
    statement = statement.on_conflict_do_update(  # a row written twice is one row; an
        index_elements=["run_id", "session_id"],  # undecided one takes what is known now
        set_={"outcome": statement.excluded.outcome, "error": statement.excluded.error},
        where=undecided & (statement.excluded.outcome != Outcome.UNKNOWN),
    )
    session.execute(statement, rows)


def recount(session: Session, run_id: str) -> dict[str, int]:
    """The run's counts, from its session rows."""
    counts = dict.fromkeys(COUNTED.values(), 0)
    grouped = session.execute(
        select(SweptSession.outcome, func.count())
        .where(SweptSession.run_id == run_id)
        .group_by(SweptSession.outcome)
    )
    for outcome, count in grouped:
        if outcome in COUNTED:
            counts[COUNTED[outcome]] = count
    return counts


def update_run(
    session: Session, run_id: str, values: Mapping[str, object], attempt: int | None = None
) -> bool:
    """Write the run's values; with ``attempt``, only while that attempt is the run's last
    (a process frozen past its lease, whose run another took up, writes nothing). Whether
    the row was written."""
    statement = update(SweepRun).where(SweepRun.id == run_id)
    if attempt is not None:
        statement = statement.where(SweepRun.attempts == attempt)
    return rows_changed(session, statement.values(values)) == 1


def close_run(
    session: Session, run_id: str, values: Mapping[str, object], attempt: int | None = None
) -> bool:
    """Final status and times, with counts recounted from the rows (see ``update_run``)."""
    return update_run(session, run_id, {**values, **recount(session, run_id)}, attempt)


def live_run_ids(db: Database) -> set[str]:
    """Runs whose lease is still held by a process that may be alive and writing."""
    held = select(SweepLock.run_id, SweepLock.owner).where(SweepLock.expires_at >= time.time())
    with db.session() as session:
        return {run_id for run_id, owner in session.execute(held) if not holder_is_dead(owner)}


LAPSED = "the process stopped mid-sweep (lease lapsed)"
NEVER_RAN = "the process that held it queued stopped before it ran"


def mark_stale_runs(db: Database) -> int:
    """Runs still 'running' without a live lease belong to a process that died mid-sweep.
    One the job queue carries is waiting again (the queue hands a dead worker's message to
    the next worker, which takes the run up under the same id); any other is interrupted, as
    is one an in-process queue held when its process died. A fleet whose last children ended
    so is settled (the consumer that would have settled it died with them)."""
    ended = _mark_stale_running(db) + _mark_lost_in_memory(db)
    _settle_fleets_left_open(db)  # their last children may have ended so, or by a journal
    return ended


def _settle_fleets_left_open(db: Database) -> None:
    from checkout_sweeper.runs.fleet.rows import settle_parent  # fleets' rows build on these

    running = select(SweepRun.id).where(
        SweepRun.fleet.is_(True), SweepRun.status == RunStatus.RUNNING
    )
    with db.session() as session:
        parents = list(session.scalars(running))
    for parent_id in parents:
        settle_parent(db, parent_id)


def _mark_lost_in_memory(db: Database) -> int:
    """Queued runs of an in-process queue (no ``queued_at``) whose process, on this host, is
    gone: nothing will ever run them."""
    waiting = select(SweepRun.id, SweepRun.host, SweepRun.pid).where(
        SweepRun.status == RunStatus.QUEUED, SweepRun.queued_at.is_(None)
    )
    with db.session() as session:
        rows = session.execute(waiting).all()
        lost = [
            run_id
            for run_id, host, pid in rows
            if host and pid is not None and process_is_dead(host, pid)
        ]
        if not lost:
            return 0
        ended = update(SweepRun).where(SweepRun.id.in_(lost), SweepRun.status == RunStatus.QUEUED)
        values = {"status": RunStatus.INTERRUPTED, "error": NEVER_RAN, "finished_at": utcnow()}
        return rows_changed(session, ended.values(**values))


def _mark_stale_running(db: Database) -> int:
    alive = live_run_ids(db)
    stale = update(SweepRun).where(
        SweepRun.status == RunStatus.RUNNING,
        SweepRun.id.not_in(alive),
        SweepRun.fleet.is_(False),  # a fleet's parent holds no lease: its children settle it
    )
    with db.session() as session:
        requeued = rows_changed(
            session,
            stale.where(SweepRun.queued_at.is_not(None)).values(status=RunStatus.QUEUED),
        )
        ended = rows_changed(
            session,
            stale.where(SweepRun.queued_at.is_(None)).values(
                status=RunStatus.INTERRUPTED, error=LAPSED
            ),
        )
    return requeued + ended


def recent_runs(
    db: Database,
    limit: int = 20,
    *,
    statuses: tuple[str, ...] = (),
    since: datetime | None = None,
) -> list[CountedRun]:
    """Newest first, optionally only these statuses and runs started at or after ``since``;
    ``records`` counts the run's session rows, ``pending`` the outcomes its counters know of
    that have not reached the database yet (a journal still to import)."""
    mark_stale_runs(db)
    newest = select(SweepRun).order_by(SweepRun.started_at.desc()).limit(limit)
    if statuses:
        newest = newest.where(SweepRun.status.in_(statuses))
    if since is not None:
        newest = newest.where(SweepRun.started_at >= since)
    with db.session() as session:
        runs = [RunView.of(run) for run in session.scalars(newest)]
        counted: dict[str, int] = {
            run_id: count
            for run_id, count in session.execute(
                select(SweptSession.run_id, func.count())
                .where(SweptSession.run_id.in_([run.id for run in runs]))
                .where(SweptSession.outcome.in_(list(COUNTED)))
                .group_by(SweptSession.run_id)
            )
        }
    return [_counted(run, counted.get(run.id, 0)) for run in runs]


def _counted(run: RunView, records: int) -> CountedRun:
    """A fleet's parent has no rows of its own: its counters sum its children's."""
    known = run.expired_count + run.already_closed_count + run.failed_count  # as COUNTED names
    return CountedRun(run, records, 0 if run.fleet else max(0, known - records))


MIN_PREFIX = 4  # shorter prefixes match too many runs to be worth a query


def runs_matching(db: Database, id_or_prefix: str, limit: int = 10) -> list[RunView]:
    """The run with this id, or the runs (newest first, at most ``limit``) whose id starts
    with it when it is at least ``MIN_PREFIX`` long, as ``history`` shows ids."""
    with db.session() as session:
        run = session.get(SweepRun, id_or_prefix)
        if run is not None:
            return [RunView.of(run)]
        if len(id_or_prefix) < MIN_PREFIX:
            return []
        matches = session.scalars(
            select(SweepRun)
            .where(SweepRun.id.startswith(id_or_prefix, autoescape=True))
            .order_by(SweepRun.started_at.desc())
            .limit(limit)
        )
        return [RunView.of(match) for match in matches]


WAITING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INTERRUPTED)  # a worker may take these


def queued_run(db: Database, sweep_id: str) -> RunView | None:
    """The run a queue message names, if a worker may take it up: queued, or left running or
    interrupted by a worker that died or stopped (its lease then says whether it is free)."""
    with db.session() as session:
        run = session.get(SweepRun, sweep_id)
        if run is None or run.status not in WAITING:
            return None
        if run.cancel_requested_at is not None:  # canceled while no process ran it
            run.status, run.finished_at = RunStatus.CANCELED, utcnow()
            run.error = run.error or cancel_reason(run.canceled_by)
            return None
        return RunView.of(run)


PENDING_POLL_S = 0.2  # how often a caller waiting on a run reads its status
ENDED = (
    RunStatus.SUCCEEDED,
    RunStatus.INCOMPLETE,
    RunStatus.FAILED,
    RunStatus.INTERRUPTED,
    RunStatus.PARTIAL,
)


def end_abandoned_run(db: Database, sweep_id: str, error: str) -> RunView | None:
    """A run the job queue gave up on ends ``failed``, saying why; the run as it ended, or
    None when it had ended already or a live process runs it (a second message for it)."""
    alive = live_run_ids(db)
    with db.session() as session:
        run = session.get(SweepRun, sweep_id, with_for_update=True)
        if run is None or run.status not in WAITING or run.id in alive:
            return None
        run.status, run.error, run.finished_at = RunStatus.FAILED, error, utcnow()
        return RunView.of(run)


OWNER, OPERATOR = "owner", "operator"  # who canceled: the API user, or `sweeps cancel`


def cancel_reason(canceled_by: str | None) -> str:
    """The run's error once canceled, naming who canceled it."""
    who = "an operator" if canceled_by == OPERATOR else "its owner"
    return f"the sweep was canceled by {who}"


def canceled_reason(db: Database, run_id: str) -> str:
    with db.session() as session:
        by = session.scalar(select(SweepRun.canceled_by).where(SweepRun.id == run_id))
    return cancel_reason(by)


def request_cancel(db: Database, sweep_id: str, by: str = OWNER) -> str:
    """Cancel a run: a queued one at once (no worker will take it), a running one by a flag
    its process reads within a second (one whose process died is canceled at once). Returns
    the status it has now; an ended run is left as it is. The first to cancel is recorded
    (``by``: ``OWNER`` or ``OPERATOR``) and named in the run's error."""
    alive = live_run_ids(db)
    with db.session() as session:
        run = session.get(SweepRun, sweep_id, with_for_update=True)
        if run is None or run.status in (*ENDED, RunStatus.CANCELED):
            return run.status if run is not None else ""
        if run.cancel_requested_at is None:
            run.cancel_requested_at, run.canceled_by = utcnow(), by
        if run.status == RunStatus.QUEUED or run.id not in alive:
            run.status, run.finished_at = RunStatus.CANCELED, utcnow()
            run.error = run.error or cancel_reason(run.canceled_by)
        return run.status


def cancel_asked(db: Database, run_ids: set[str]) -> set[str]:
    """Which of these runs their owner asked to cancel."""
    with db.session() as session:
        asked = select(SweepRun.id).where(
            SweepRun.id.in_(run_ids), SweepRun.cancel_requested_at.is_not(None)
        )
        return set(session.scalars(asked))


def cancel_requested(session: Session, run_id: str) -> bool:
    asked = select(SweepRun.cancel_requested_at).where(SweepRun.id == run_id)
    return session.scalar(asked) is not None


def run_status(db: Database, sweep_id: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(SweepRun.status).where(SweepRun.id == sweep_id))


def wait_while_pending(db: Database, sweep_id: str, timeout_s: float) -> str | None:
    """The run's status once it is neither queued nor running, or as it is after
    ``timeout_s`` (a cancel being carried out, a worker still at it)."""
    deadline = time.monotonic() + timeout_s
    while (status := run_status(db, sweep_id)) in (RunStatus.QUEUED, RunStatus.RUNNING):
        if time.monotonic() >= deadline:
            break
        time.sleep(PENDING_POLL_S)
    return status


class SessionRecord(TypedDict):
    """One session's row as ``history show`` and ``/v1/sweeps/{id}/sessions`` show it."""

    session_id: str
    outcome: str
    error: str | None
    attempts: int
    recorded_at: str | None  # ISO 8601 in UTC


def session_record(row: SweptSession) -> SessionRecord:
    return {
        "session_id": row.session_id,
        "outcome": row.outcome,
        "error": row.error,
        "attempts": row.attempts,
        "recorded_at": utc_iso(row.recorded_at),
    }


def run_sessions(
    db: Database,
    run_id: str,
    *,
    outcomes: tuple[str, ...] = (),
    limit: int | None = None,
    starting_after: str | None = None,
) -> list[SessionRecord]:
    """The run's session rows in the order they were recorded, optionally filtered by
    outcome and paged by ``starting_after`` (a session id) and ``limit``."""
    query = select(SweptSession).where(SweptSession.run_id == run_id).order_by(SweptSession.id)
    if outcomes:
        query = query.where(SweptSession.outcome.in_(outcomes))
    with db.session() as session:
        if starting_after is not None:
            after = session.scalar(
                select(SweptSession.id).where(
                    SweptSession.run_id == run_id, SweptSession.session_id == starting_after
                )
            )
            if after is None:
                raise LookupError(starting_after)
            query = query.where(SweptSession.id > after)
        if limit is not None:
            query = query.limit(limit)
        return [session_record(row) for row in session.scalars(query)]


def user_runs(db: Database, user_id: int, limit: int) -> list[RunView]:
    """The user's runs, newest first (``limit + 1`` tells the caller whether there are more)."""
    mark_stale_runs(db)
    query = (
        select(SweepRun)
        .where(SweepRun.user_id == user_id)
        .order_by(SweepRun.started_at.desc())
        .limit(limit)
    )
    with db.session() as session:
        return [RunView.of(run) for run in session.scalars(query)]


def run_of_user(db: Database, run_id: str, user_id: int) -> RunView | None:
    """One run (its stored answer too), if this user started it."""
    with db.session() as session:
        run = session.get(SweepRun, run_id)
        if run is None or run.user_id != user_id:
            return None
        return RunView.of(run)


def run_by_idempotency_key(db: Database, user_id: int, key: str) -> RunView | None:
    """The run a user's earlier request with this ``Idempotency-Key`` started, with the
    fingerprint of that request's body."""
    with db.session() as session:
        run = session.scalars(
            select(SweepRun).where(SweepRun.user_id == user_id, SweepRun.idempotency_key == key)
        ).first()
        if run is None:
            return None
        return RunView.of(run)


def children_of(db: Database, parent_id: str) -> list[RunView]:
    """The runs of a fleet sweep's accounts, oldest first."""
    with db.session() as session:
        query = select(SweepRun).where(SweepRun.parent_id == parent_id)
        return [RunView.of(run) for run in session.scalars(query.order_by(SweepRun.started_at))]

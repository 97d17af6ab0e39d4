"""The audit trail: a ``SweepRun`` row per sweep and a ``SweptSession`` row per session.

Outcomes arrive from many expire threads; they are buffered and written in batches (every
``batch_size`` outcomes or ``flush_every_s`` seconds), and each write also refreshes the run's
counters and heartbeat. A process that dies mid-sweep loses at most the last unflushed batch,
and its run, whose account lease then lapses, is reported as interrupted.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import select, update

from .db import Database
from .models import SweepLock, SweepRun, SweptSession, utcnow
from .tally import SessionOutcome, SweepProgress, SweepResult


class RunRecorder:
    """Writes one sweep's run row and session rows as the sweep goes."""

    def __init__(
        self,
        db: Database,
        run_id: str,
        *,
        trigger: str,
        account: str,
        livemode: bool,
        dry_run: bool,
        user_id: int | None = None,
        batch_size: int = 100,
        flush_every_s: float = 1.0,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.batch_size = batch_size
        self.flush_every_s = flush_every_s
        self._buffer: list[SessionOutcome] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._progress: SweepProgress | None = None
        with db.session() as session:
            session.add(
                SweepRun(
                    id=run_id,
                    trigger=trigger,
                    user_id=user_id,
                    account=account,
                    livemode=livemode,
                    dry_run=dry_run,
                    status="running",
                    expired_count=0,
                    already_closed_count=0,
                    failed_count=0,
                    stripe_requests=0,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )

    def on_outcome(self, outcome: SessionOutcome) -> None:
        with self._lock:
            self._buffer.append(outcome)
            due = (
                len(self._buffer) >= self.batch_size
                or time.monotonic() - self._last_flush >= self.flush_every_s
            )
        if due:
            self.flush()

    def on_progress(self, progress: SweepProgress) -> None:
        self._progress = progress

    def flush(self) -> None:
        """Write what is buffered, with the run's counters so far; safe from any thread."""
        with self._write_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
                self._last_flush = time.monotonic()
            progress = self._progress
            with self.db.session() as session:
                if batch:
                    session.add_all(
                        SweptSession(
                            run_id=self.run_id,
                            session_id=o.session_id,
                            outcome=o.outcome,
                            error=o.error,
                            attempts=o.attempts,
                        )
                        for o in batch
                    )
                values: dict[str, Any] = {"heartbeat_at": utcnow()}
                if progress is not None:
                    values.update(
                        expired_count=progress.expired,
                        already_closed_count=progress.already_closed,
                        failed_count=progress.failed,
                        stripe_requests=progress.requests,
                    )
                session.execute(update(SweepRun).where(SweepRun.id == self.run_id).values(values))

    def finish(self, result: SweepResult | None, error: str | None = None) -> None:
        """Flush the rest and close the run: succeeded, incomplete (work left) or failed."""
        self.flush()
        values: dict[str, Any] = {"finished_at": utcnow(), "heartbeat_at": utcnow()}
        if result is not None:
            values.update(
                status="succeeded" if result.succeeded else "incomplete",
                expired_count=result.expired_count,
                already_closed_count=result.already_closed_count,
                failed_count=len(result.failed),
                remaining_count=result.remaining_open_count,
                stripe_requests=result.stripe_requests,
            )
        else:
            values.update(status="failed", error=error)
        with self.db.session() as session:
            session.execute(update(SweepRun).where(SweepRun.id == self.run_id).values(values))

    def interrupted(self, reason: str) -> None:
        """The process is going away mid-sweep (a signal): say so rather than look alive."""
        self.flush()
        with self.db.session() as session:
            session.execute(
                update(SweepRun)
                .where(SweepRun.id == self.run_id, SweepRun.status == "running")
                .values(status="interrupted", error=reason, finished_at=utcnow())
            )


def mark_stale_runs_interrupted(db: Database) -> int:
    """Runs still 'running' without a live lease belong to a process that died mid-sweep."""
    alive = select(SweepLock.run_id).where(SweepLock.expires_at >= time.time())
    with db.session() as session:
        result = session.execute(
            update(SweepRun)
            .where(SweepRun.status == "running", SweepRun.id.not_in(alive))
            .values(status="interrupted", error="the process stopped mid-sweep (lease lapsed)")
        )
        return result.rowcount or 0


def recent_runs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    mark_stale_runs_interrupted(db)
    with db.session() as session:
        runs = session.scalars(select(SweepRun).order_by(SweepRun.started_at.desc()).limit(limit))
        return [run.as_dict() for run in runs]

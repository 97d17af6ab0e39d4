"""The audit trail of one sweep: a ``SweepRun`` row and a ``SweptSession`` row per session.

Nothing is lost on the way. Each outcome is first appended to the run's local journal (on disk
at once), then kept in memory until a background writer has it in the database; a write that
fails keeps its batch and is retried with backoff, and logged. At the end, ``finish`` waits up
to a grace period for the database; if it is still out of reach, it raises ``AuditError``
naming the journal, which the next command or worker imports (``recovery``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.orm import Session

from checkout_sweeper.engine.tally import SessionOutcome, SweepProgress
from checkout_sweeper.errors import AuditError, SweepCanceled
from checkout_sweeper.runs.journal import Journal, OutcomeEntry
from checkout_sweeper.runs.lease import this_process
from checkout_sweeper.runs.rows import (
    cancel_requested,
    close_run,
    insert_outcomes,
    outcome_entry,
    recount,
    update_run,
)
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, utcnow
from checkout_sweeper.vocabulary import RunStatus

log = logging.getLogger("checkout_sweeper.audit")
MAX_RETRY_WAIT_S = 8.0


class RunRecorder:
    """Writes one sweep's run row and session rows as the sweep goes; thread-safe."""

    def __init__(
        self,
        db: Database,
        journal_dir: Path,
        run: Mapping[str, object],  # the new row's values (its id at least)
        *,
        batch_size: int = 100,
        flush_every_s: float = 1.0,
    ) -> None:
        self.db = db
        self.run_id = str(run["id"])
        self.batch_size = batch_size
        self.flush_every_s = flush_every_s
        self._pending: list[OutcomeEntry] = []
        self._retry_at = 0.0  # after a failed write: no early wake before this (monotonic)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._progress: SweepProgress | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self.write_failures = 0
        self.status: str = RunStatus.RUNNING
        self.on_cancel: Callable[[], None] | None = None  # its owner asked to cancel it
        self.superseded = False  # another attempt took the run up: this one writes no row
        host, pid = this_process()
        with db.session() as session:  # the database must answer for a sweep to start
            # what earlier attempts of a run taken up again did: its counters only grow
            self.attempt, self.earlier = take_up_run(session, run, host=host, pid=pid)
        self.journal = Journal(journal_dir, self.run_id)
        self.journal.append({"kind": "run", **run})
        self._writer = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._writer.start()

    @property
    def pending(self) -> int:
        """Outcomes in the journal that have not reached the database yet."""
        with self._lock:
            return len(self._pending)

    def on_outcome(self, outcome: SessionOutcome) -> None:
        entry = outcome_entry(outcome.session_id, outcome.outcome, outcome.error, outcome.attempts)
        self.journal.append(entry)
        with self._lock:
            self._pending.append(entry)
            # a full batch wakes the writer, but never before a failed write's backoff ends
            due = len(self._pending) >= self.batch_size and time.monotonic() >= self._retry_at
        if due:
            self._wake.set()

    def on_progress(self, progress: SweepProgress) -> None:
        self._progress = progress

    def finish(self, status: str, values: Mapping[str, object], *, grace_s: float) -> None:
        """Close the run with ``status``; wait up to ``grace_s`` for the database (even one
        that never answers), else raise ``AuditError`` naming the journal that holds all."""
        self.status = status
        self._closing.set()
        self._wake.set()
        final = {"status": status, "finished_at": utcnow(), **self._counters(), **values}
        self.journal.append({"kind": "finish", **final})
        written = threading.Event()
        closer = threading.Thread(
            target=self._write_final,
            args=(final, time.monotonic() + grace_s, written),
            name="audit-close",
            daemon=True,  # a write stuck on a silent database must not keep the process alive
        )
        closer.start()
        closer.join(timeout=grace_s + 1)
        if not written.is_set():
            raise AuditError(
                f"the database could not be reached to record sweep {self.run_id}; every "
                f"outcome is kept in {self.journal.path} and will be imported by the next "
                "command once the database answers"
            )
        self.journal.remove()

    def _write_final(
        self, final: Mapping[str, object], deadline: float, written: threading.Event
    ) -> None:
        wait = 0.25
        while True:
            try:
                self._write(final)
            except Exception as err:  # logged; retried until the grace period ends
                self._note_failure(err)
                if time.monotonic() + wait > deadline:
                    return
                time.sleep(wait)
                wait = min(wait * 2, MAX_RETRY_WAIT_S)
            else:
                written.set()
                return

    # the writer -------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        wait = self.flush_every_s
        while not self._closing.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                self._write()
                wait, self._retry_at = self.flush_every_s, 0.0
            except Exception as err:  # kept, logged, retried with backoff
                self._note_failure(err)
                wait = min(max(wait, 0.25) * 2, MAX_RETRY_WAIT_S)
                self._retry_at = time.monotonic() + wait

    def _write(self, final: Mapping[str, object] | None = None) -> None:
        """One transaction: the pending outcomes and the run's counters (or its close)."""
        canceled = False
        with self._write_lock:
            with self._lock:
                batch = list(self._pending)
            with self.db.session() as session:
                insert_outcomes(session, self.run_id, batch)  # facts, whoever runs it now
                if final is not None:
                    mine = close_run(session, self.run_id, final, self.attempt)
                else:
                    mine = update_run(session, self.run_id, self._counters(), self.attempt)
                    canceled = cancel_requested(session, self.run_id)
                self.superseded = self.superseded or _superseded(self.run_id, mine)
            with self._lock:
                del self._pending[: len(batch)]
        if canceled and self.on_cancel is not None:
            self.on_cancel()
        if self.write_failures:
            log.info("audit writes for sweep %s work again", self.run_id)
            self.write_failures = 0

    def _counters(self) -> dict[str, object]:
        return {"heartbeat_at": utcnow(), **counters_of(self._progress, self.earlier)}

    def _note_failure(self, err: Exception) -> None:
        self.write_failures += 1
        waiting = f"{self.write_failures} in a row; {self.pending} outcomes wait in"
        log.warning(
            "audit write for sweep %s failed (%s %s): %s",
            *(self.run_id, waiting, self.journal.path, err),
            extra={"fields": {"sweep_id": self.run_id, "pending": self.pending}},
        )


def _superseded(run_id: str, written: bool) -> bool:
    """Whether another attempt of the run took it up (this one's row write matched nothing):
    said once; this attempt then writes no row, only its sessions' outcomes."""
    if not written:
        log.warning("sweep %s was taken up by another attempt", run_id)
    return not written


def counters_of(progress: SweepProgress | None, earlier: dict[str, int]) -> dict[str, object]:
    """The run row's live counters, from the sweep's progress (none before the first) and
    what earlier attempts of the run did: they only grow, and what was handled never
    exceeds what was found."""
    if progress is None:
        return {}
    handled_before = earlier.get("expired_count", 0) + earlier.get("already_closed_count", 0)
    return {
        "expired_count": earlier.get("expired_count", 0) + progress.expired,
        "already_closed_count": earlier.get("already_closed_count", 0) + progress.already_closed,
        "failed_count": progress.failed,  # a session that failed before is found again
        "found_count": handled_before + progress.found,
        "listing_complete": progress.listing_complete,
        "stripe_requests": progress.requests,
    }


def take_up_run(
    session: Session, run: Mapping[str, object], *, host: str, pid: int
) -> tuple[int, dict[str, int]]:
    """A new run row, or a queued (or resumed) one taken up by this process: running here,
    one attempt more. This attempt's number, and what earlier attempts did (from the run's
    session rows)."""
    known = session.get(SweepRun, run["id"])
    if known is None:
        session.add(SweepRun(**run, host=host, pid=pid, attempts=1))
        return 1, {}
    if known.status == RunStatus.CANCELED:
        raise SweepCanceled("the sweep was canceled before a worker took it up")
    if known.attempts == 0:  # it starts now; until now it waited (``queued_at``)
        known.started_at = utcnow()
    known.status, known.host, known.pid = RunStatus.RUNNING, host, pid
    known.finished_at = known.error = None  # what a reader marked on the dead attempt
    scope = run.get("scope")
    if isinstance(scope, str):  # its cutoff fixed when it first ran
        known.scope = scope
    known.attempts, known.heartbeat_at = known.attempts + 1, utcnow()
    earlier = recount(session, known.id) if known.attempts > 1 else {}
    return known.attempts, earlier

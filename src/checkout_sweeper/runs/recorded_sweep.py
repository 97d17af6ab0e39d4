"""A recorded sweep: lease the account, run the engine, keep the audit trail, release.

The endpoint and the ``sweep`` command both come through here, so the two doors share the same
guarantees:

* one sweep per account at a time: the lease is renewed every ``ttl/6`` seconds, and the
  sweeper may send no Stripe request after ``last renewal + ttl - margin`` (``LeaseKeeper``), so
  it stops before its lease can lapse and another sweeper take the account, whatever keeps the
  renewal from succeeding;
* every outcome written down (``audit_trail.RunRecorder``, with its local journal);
* a run row that always ends as succeeded, incomplete, failed or interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checkout_sweeper.engine.gateway import Gateway
from checkout_sweeper.engine.scope import EVERYTHING
from checkout_sweeper.engine.stop import StopSignal
from checkout_sweeper.engine.sweeper import Sweeper, SweepOptions, SweepProgress, SweepResult
from checkout_sweeper.engine.tally import SessionOutcome
from checkout_sweeper.errors import (
    DatabaseUnavailable,
    LeaseLost,
    StatementRefused,
    SweepAborted,
    SweepCanceled,
    SweepInterrupted,
)
from checkout_sweeper.runs.audit_trail import RunRecorder
from checkout_sweeper.runs.lease import AccountLease
from checkout_sweeper.runs.observer import SweepObserver
from checkout_sweeper.runs.recovery import import_journal_of
from checkout_sweeper.runs.rows import canceled_reason
from checkout_sweeper.runs.settlement import settle_unknown
from checkout_sweeper.runs.write_ahead import WriteAheadGateway
from checkout_sweeper.settings import AUDIT_GRACE_S, LEASE_TTL_S
from checkout_sweeper.store.database import Database
from checkout_sweeper.vocabulary import RunStatus

__all__ = ["RecordedSweep", "Recording", "begin_sweep", "lease_margin_s"]

log = logging.getLogger("checkout_sweeper.service")


@dataclass(frozen=True)
class Recording:
    """Where and how a sweep is recorded: the database, the journal folder, the lease."""

    db: Database
    journal_dir: Path
    lease_ttl_s: float = LEASE_TTL_S.default
    audit_grace_s: float = AUDIT_GRACE_S.default


def lease_margin_s(ttl_s: float) -> float:
    """How long before its lease could lapse a sweeper stops sending requests."""
    return max(ttl_s / 3, min(1.0, ttl_s / 2))


class LeaseKeeper(threading.Thread):
    """Renews the lease and moves the sweeper's deadline after each renewal that succeeds."""

    def __init__(self, lease: AccountLease, stop: StopSignal, ttl_s: float) -> None:
        super().__init__(name="lease-keeper", daemon=True)
        self._lease = lease
        self._signal = stop
        self._ttl_s = ttl_s
        self._done = threading.Event()
        self.failures = 0

    def start_deadline(self, renewed_at: float) -> None:
        deadline = renewed_at + self._ttl_s - lease_margin_s(self._ttl_s)
        lapse = LeaseLost(
            "the account lease could not be renewed in time (the database did not answer); "
            "stopped so that two sweeps never overlap"
        )
        self._signal.set_deadline(deadline, lapse)

    def run(self) -> None:
        while not self._done.wait(self._ttl_s / 6):
            started = time.monotonic()
            try:
                kept = self._lease.renew()
            except Exception as err:  # the deadline stays where it was; logged and counted
                self.failures += 1
                log.warning("lease renewal failed (%d in a row): %s", self.failures, err)
                continue
            if not kept:
                self._signal.abort(LeaseLost("the account lease was taken by another sweep"))
                return
            self.failures = 0
            self.start_deadline(started)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=1)


def begin_sweep(
    recording: Recording,
    gateway: Gateway,
    options: SweepOptions,
    *,
    trigger: str,
    user_id: int | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    sweep_id: str | None = None,
    row: dict[str, object] | None = None,
) -> RecordedSweep:
    """Take the account's lease and record the run (a new row with ``row``'s values too, or
    the queued row of ``sweep_id``, taken up here after its last attempt's journal): the
    sweep, ready to ``run``. Raises ``SweepInProgress`` (nothing recorded) or what recording
    raised (the lease is given back)."""
    taken_up = sweep_id is not None  # a queued run: this attempt may follow another
    sweep_id = sweep_id or uuid.uuid4().hex
    lease = AccountLease(recording.db, gateway.account, sweep_id, ttl_s=recording.lease_ttl_s)
    acquired_at = time.monotonic()
    lease.acquire()
    try:
        if taken_up:
            import_journal_of(recording.db, recording.journal_dir, sweep_id)
        options = options.resolved(time.time())
        run = {"id": sweep_id, "trigger": trigger, "user_id": user_id, **(row or {})}
        run.update(_run_values(gateway, options))
        recorder = RunRecorder(recording.db, recording.journal_dir, run)
    except BaseException:
        _release(lease)
        raise
    options = _less_what_was_done(options, recorder.earlier)
    sweep = RecordedSweep(recording, gateway, options, lease, recorder, trigger, on_progress)
    sweep.keep_lease_from(acquired_at)
    return sweep


class RecordedSweep:
    """A sweep that holds its account's lease and has its run row (``begin_sweep`` makes
    one), ready to ``run``: in the caller's thread, or in the queue's consumer."""

    def __init__(
        self,
        recording: Recording,
        gateway: Gateway,
        options: SweepOptions,
        lease: AccountLease,
        recorder: RunRecorder,
        trigger: str,
        on_progress: Callable[[SweepProgress], None] | None = None,
    ) -> None:
        self.sweep_id = str(recorder.run_id)
        self._grace_s = recording.audit_grace_s
        self._lease, self._recorder = lease, recorder
        self._settle: Callable[[], int] = lambda: settle_unknown(
            recording.db, gateway, gateway.account
        )
        self.sweeper = Sweeper(
            WriteAheadGateway(gateway, recorder.journal),
            options,
            sweep_id=self.sweep_id,
            on_outcome=self._outcome,
            on_progress=self._progress(on_progress),
        )
        self._recorder.on_cancel = lambda: self.sweeper.abort(
            SweepCanceled(canceled_reason(recording.db, self.sweep_id))
        )
        self._observer = SweepObserver(self.sweep_id, trigger, self.sweeper.bucket)
        self._observer.pending = lambda: self._recorder.pending
        self._keeper = LeaseKeeper(self._lease, self.sweeper.stop, recording.lease_ttl_s)

    @property
    def attempt(self) -> int:
        """Which attempt of its run this is (a run the queue carries may take several)."""
        return self._recorder.attempt

    def keep_lease_from(self, acquired_at: float) -> None:
        """The sweeper's deadline from the moment the lease was taken; the sweep is live."""
        self._keeper.start_deadline(acquired_at)
        self._observer.started()

    def _outcome(self, outcome: SessionOutcome) -> None:
        self._recorder.on_outcome(outcome)
        self._observer.outcome(outcome)

    def _progress(
        self, on_progress: Callable[[SweepProgress], None] | None
    ) -> Callable[[SweepProgress], None]:
        def progress(snapshot: SweepProgress) -> None:
            self._recorder.on_progress(snapshot)
            self._observer.progress(snapshot)
            if on_progress is not None:
                on_progress(snapshot)

        return progress

    def interrupt(self, reason: str) -> None:
        """Stop from another thread (the server is stopping): in-flight expires finish and are
        recorded, and the run ends ``interrupted``."""
        self.sweeper.abort(SweepInterrupted(reason))

    def run(self) -> SweepResult:
        """Raises ``SweepAborted`` (carrying what was done) or ``AuditError`` (the database
        stayed out of reach; the journal keeps everything). The lease is released."""
        try:
            self._keeper.start()  # settling sends requests too: under a lease kept alive
            self._settle_earlier_runs()
            return _run_recorded(self.sweeper, self._keeper, self._recorder, self._grace_s)
        finally:
            self._keeper.stop()  # (already, unless settling failed)
            self._observer.finished(self._recorder.status, self.sweeper.progress)
            _release(self._lease)

    def _settle_earlier_runs(self) -> None:
        """Under the lease, before this sweep lists: what stopped sweeps left unknown. Not in
        a dry run, which sends no expire (settling replays some): the next sweep does it."""
        if self.sweeper.options.dry_run:
            return
        try:
            self._settle()
        except (DatabaseUnavailable, StatementRefused) as err:  # this sweep's audit matters more
            log.warning("unknown outcomes of earlier sweeps not settled yet: %s", err)


def _run_recorded(
    sweeper: Sweeper, keeper: LeaseKeeper, recorder: RunRecorder, grace_s: float
) -> SweepResult:
    """The sweep with its lease keeper (started); the run row ends whatever happens."""
    try:
        result = sweeper.run()
    except SweepAborted as stopped:
        recorder.finish(_ended_as(stopped), _values(stopped.result, str(stopped)), grace_s=grace_s)
        raise
    except KeyboardInterrupt as signal:  # Ctrl-C, or SIGTERM turned into one by the door
        partial = sweeper.partial_result()
        recorder.finish(RunStatus.INTERRUPTED, _values(partial, "interrupted"), grace_s=grace_s)
        raise SweepInterrupted("the sweep was interrupted", partial) from signal
    except BaseException as crash:  # SystemExit, or a bug: the run row still ends
        recorder.finish(RunStatus.FAILED, {"error": type(crash).__name__}, grace_s=grace_s)
        raise
    finally:
        keeper.stop()
    status = RunStatus.SUCCEEDED if result.succeeded else RunStatus.INCOMPLETE
    recorder.finish(status, _values(result), grace_s=grace_s)
    return result


def _ended_as(stopped: SweepAborted) -> str:
    """The run's status for why it stopped early."""
    if isinstance(stopped, SweepCanceled):
        return RunStatus.CANCELED
    if isinstance(stopped, (LeaseLost, SweepInterrupted)):
        return RunStatus.INTERRUPTED
    return RunStatus.FAILED


def _less_what_was_done(options: SweepOptions, earlier: dict[str, int]) -> SweepOptions:
    """A run taken up again expires at most what its ``limit`` leaves after the sessions
    its earlier attempts expired (its row keeps the limit it was asked with)."""
    limit, expired = options.scope.limit, earlier.get("expired_count", 0)
    if limit is None or not expired:
        return options
    scope = dataclasses.replace(options.scope, limit=max(0, limit - expired))
    return dataclasses.replace(options, scope=scope)


def _run_values(gateway: Gateway, options: SweepOptions) -> dict[str, object]:
    """The run row's account, mode and scope (as resolved: a resumed run keeps its cutoff)."""
    values: dict[str, object] = {"account": gateway.account, "livemode": gateway.livemode}
    values.update(dry_run=options.dry_run, status=RunStatus.RUNNING)
    if options.scope != EVERYTHING:  # a queued row keeps the scope it was asked with
        values["scope"] = options.scope.stored()
    return values


def _values(result: SweepResult | None, error: str | None = None) -> dict[str, object]:
    """The run row's closing values; a finished sweep keeps its whole answer (``result``)."""
    values: dict[str, object] = {"error": error}
    if result is not None:
        values["stripe_requests"] = result.stripe_requests
        if error is None:
            values["remaining_count"] = result.remaining_open_count
            values["result"] = json.dumps(result.as_data(), default=str)
    return values


def _release(lease: AccountLease, timeout_s: float = 5.0) -> None:
    """Give the lease back, waiting at most ``timeout_s`` on a database that may be silent."""

    def release() -> None:
        try:
            lease.release()
        except Exception as err:  # it lapses on its own after its TTL
            log.warning("could not release the account lease (it lapses by itself): %s", err)

    releaser = threading.Thread(target=release, name="lease-release", daemon=True)
    releaser.start()
    releaser.join(timeout_s)
    if releaser.is_alive():
        log.warning("the database did not answer the lease release; it lapses by itself")

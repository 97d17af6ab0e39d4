"""Taking sweeps off the queue: the actor's body. Each message names a queued run; the consumer
takes the account's lease, checks the caller's quota again, runs the sweep under the run's own
id and spends the quota once it has run. An account another sweep holds is retried later by
the queue, for ``SWEEPER_BUSY_WAIT`` seconds; a run whose message the queue gives up on ends
``failed``, never queued for ever. A stopping worker hands its sweeps back (``queued``)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import dramatiq
from dramatiq import Broker, Retry
from limits.strategies import RateLimiter

from checkout_sweeper.engine.scope import parse_scope
from checkout_sweeper.errors import (
    AuditError,
    DatabaseUnavailable,
    LeaseError,
    LeaseLost,
    SweepAborted,
    SweepCanceled,
    SweeperError,
)
from checkout_sweeper.metrics import QUEUE_EVENTS
from checkout_sweeper.runs.checks import Services, did_nothing, give_back_call, queued_caller
from checkout_sweeper.runs.fleet.rows import settle_parent
from checkout_sweeper.runs.launch import Asked, start_configured_sweep
from checkout_sweeper.runs.queue.producer import (
    GIVEN_UP_ACTOR,
    QUEUE_NAME,
    SWEEP_ACTOR,
    end_queued_run,
    enqueue_sweep,
    is_durable,
    mark_queued_again,
    waited_s,
)
from checkout_sweeper.runs.quota import counter_for
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.runs.rows import end_abandoned_run, queued_run
from checkout_sweeper.runs.run import RunView
from checkout_sweeper.settings import BUSY_WAIT_S, Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.vocabulary import RunStatus

log = logging.getLogger("checkout_sweeper.worker")
HANDED_BACK = "the worker is stopping: handed back to the queue"
STOPPED_FIRST = "the process stopped before the sweep started; ask for it again"
DATABASE_RETRIES = 30  # backoff from 1 s doubling to 5 s: about two and a half minutes of tries


class SweepRunner:
    """The actor's body: one queued run taken up, run and recorded; the running ones known,
    so that a stopping worker can hand them back."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker: Broker,
        counter: RateLimiter | None = None,
    ) -> None:
        self.settings, self.db, self.broker = settings, db, broker
        self.durable = is_durable(broker)
        # the quota's counts: the door's own where they live in its memory (the embedded case)
        self.counter = counter or counter_for(settings.ratelimit_storage_uri)
        self.running: dict[str, RecordedSweep] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, sweep_id: str) -> None:
        if self.stopping.is_set():  # a message taken while stopping goes back at once
            left_behind(self, sweep_id)
            return
        try:
            self._take(sweep_id)
        except DatabaseUnavailable as err:
            log.warning("sweep %s waits: the database cannot be reached (%s)", sweep_id, err.cause)
            raise Retry(err.cause) from err  # tried again with backoff, without a traceback

    def _take(self, sweep_id: str) -> None:
        run = queued_run(self.db, sweep_id)
        if run is None:  # finished, canceled, or unknown: nothing to do
            log.info("sweep %s is not waiting for a worker; message dropped", sweep_id)
            QUEUE_EVENTS.labels("dropped").inc()
            return
        QUEUE_EVENTS.labels("resumed" if run.attempts else "taken").inc()
        try:
            self._run_taken(run)
        finally:
            if run.parent_id:  # the last child of a fleet to end closes its parent
                settle_parent(self.db, run.parent_id)

    def _run_taken(self, run: RunView) -> None:
        sweep_id = run.id
        try:
            sweep = self._take_up(run)
        except LeaseError as busy:
            if waited_s() < self.settings.busy_wait_s:
                log.info("sweep %s waits: %s", sweep_id, busy)
                raise Retry(str(busy)) from busy  # tried again later, without a traceback
            waited = f"{self.settings.busy_wait_s:g} s ({BUSY_WAIT_S.env})"
            stayed = f"the account stayed busy for {waited}: " if self.settings.busy_wait_s else ""
            self._give_up(sweep_id, f"{stayed}{busy}")
            return
        except SweepCanceled:
            log.info("sweep %s was canceled before it started", sweep_id)
            return
        except DatabaseUnavailable:
            raise  # the run waits for the database: tried again, not ended
        except SweeperError as err:  # cannot start (live mode refused, Stripe out of reach)
            end_queued_run(self.db, sweep_id, str(err))
            log.warning("sweep %s could not start: %s", sweep_id, err)
            self._give_back(run)
            return
        with self._lock:
            self.running[sweep_id] = sweep
        try:
            sweep.run()
        except SweepAborted as stopped:
            self._stopped(run, sweep, stopped)
        except AuditError as unwritten:  # the database went away: the journal keeps all
            if not self.durable:
                raise
            log.warning("sweep %s waits for the database: %s", sweep_id, unwritten)
            raise Retry(str(unwritten)) from unwritten  # taken up again, journal first
        finally:
            with self._lock:
                self.running.pop(sweep_id, None)

    def _stopped(self, run: RunView, sweep: RecordedSweep, stopped: SweepAborted) -> None:
        """A sweep that stopped early: handed back when the queue outlives this worker and
        the worker is stopping, or lost its lease (frozen, or the database away) and no
        other attempt took the run up; else it ended (and gives its caller's call back if it
        could do nothing, for a reason of the server's)."""
        goes_back = isinstance(stopped, LeaseLost) or (
            self.stopping.is_set() and not isinstance(stopped, SweepCanceled)
        )
        if self.durable and goes_back and mark_queued_again(self.db, run.id, sweep.attempt):
            enqueue_sweep(self.broker, run.id)
            QUEUE_EVENTS.labels("handed_back").inc()
            log.info("sweep %s handed back to the queue", run.id)
            return
        log.warning("sweep %s stopped: %s", run.id, stopped)
        if did_nothing(stopped):
            self._give_back(run)

    def _take_up(self, run: RunView) -> RecordedSweep:
        """The run leased and recorded (its caller's call of the quota was taken when it
        was queued)."""
        settings = self.settings  # a fleet's child acts on its connected account
        if run.stripe_account:
            settings = dataclasses.replace(settings, stripe_account=run.stripe_account)
        return start_configured_sweep(
            settings,
            self.db,
            trigger=run.trigger,
            user_id=run.user_id,
            # its scope as resolved when it first ran, if it did
            asked=Asked(parse_scope(run.scope), run.dry_run),
            sweep_id=run.id,
        )

    def _give_back(self, run: RunView) -> None:
        submitter = queued_caller(run.trigger, run.user_id, child=bool(run.parent_id))
        services = Services(self.settings, self.db, counter=self.counter)
        give_back_call(submitter, services, held_s=_held_s(run))

    def given_up(self, message: dict[str, Any], tries: dict[str, Any]) -> None:
        """The queue stopped trying a sweep's message (an error no retry mends): the run ends
        ``failed`` with the error's last line, rather than waiting for a worker forever."""
        lines = message["options"].get("traceback", "").strip().splitlines()
        last = lines[-1] if lines else "an error it did not keep"
        self._give_up(message["args"][0], f"the worker could not run it: {last}")

    def _give_up(self, sweep_id: str, error: str) -> None:
        run = end_abandoned_run(self.db, sweep_id, error)
        if run is None:
            return
        QUEUE_EVENTS.labels("given_up").inc()
        log.warning("sweep %s failed: %s", sweep_id, error)
        self._give_back(run)
        if run.parent_id:
            settle_parent(self.db, run.parent_id)

    def hand_back_all(self, reason: str) -> None:
        """Stop dispatching in every sweep of this process; each records what it did, then
        goes back to a durable queue, or ends ``interrupted`` with ``reason``."""
        self.stopping.set()
        with self._lock:
            sweeps = list(self.running.values())
        for sweep in sweeps:
            sweep.interrupt(HANDED_BACK if self.durable else reason)

    def running_now(self) -> dict[str, RecordedSweep]:
        with self._lock:
            return dict(self.running)


def left_behind(runner: SweepRunner, sweep_id: str) -> None:
    """A message a stopping process will not run: back to a durable queue for another
    worker, or its run ends ``interrupted`` (an in-process queue ends with the process)."""
    if runner.durable:
        enqueue_sweep(runner.broker, sweep_id)
        log.info("sweep %s left to another worker: this one is stopping", sweep_id)
    else:
        end_queued_run(runner.db, sweep_id, STOPPED_FIRST, RunStatus.INTERRUPTED)
        log.info("sweep %s not started: %s", sweep_id, STOPPED_FIRST)


def declare_actors(runner: SweepRunner) -> None:
    """The sweep actor and the one told of a message the queue gave up on, on ``runner``'s
    broker: retried with backoff from 1 s to 5 s while ``_worth_retrying`` says so."""
    declare = dramatiq.actor(
        broker=runner.broker,
        actor_name=SWEEP_ACTOR,
        queue_name=QUEUE_NAME,
        min_backoff=1_000,
        max_backoff=5_000,  # a sweep behind a busy account starts within 5 s of it being free
        retry_when=_worth_retrying,
        on_retry_exhausted=GIVEN_UP_ACTOR,
    )
    declare(runner.__call__)
    given_up = dramatiq.actor(
        broker=runner.broker, actor_name=GIVEN_UP_ACTOR, queue_name=QUEUE_NAME
    )
    given_up(runner.given_up)


def _worth_retrying(retries: int, error: Exception) -> bool:
    """The account is busy (its lease held): later, until ``SWEEPER_BUSY_WAIT`` has passed.
    The database out of reach: later, about two minutes' worth of tries. Anything else is
    recorded on the run."""
    if isinstance(error.__cause__, DatabaseUnavailable):
        return retries < DATABASE_RETRIES
    return isinstance(error, Retry)


def _held_s(run: RunView) -> float:
    """How long ago the run's call of the quota was taken (about when it was queued)."""
    taken = run.queued_at or run.started_at
    return 0.0 if taken is None else max(0.0, time.time() - taken.timestamp())

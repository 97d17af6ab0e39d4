"""``worker``: a process that runs the sweeps the job queue carries (``SWEEPER_QUEUE_URL``).

Each message names a queued run; the worker takes the account's lease, checks the caller's
quota again, runs the sweep under the run's own id and spends the quota once it has run. An
account another sweep holds is retried later by the queue, for ``SWEEPER_BUSY_WAIT`` seconds;
a run whose message the queue gives up on ends ``failed``, never queued for ever. SIGTERM or
Ctrl-C: no new message is taken, the sweeps running here stop dispatching, record what is in
flight and go back to the queue (``queued``, not ``interrupted``), so a deploy ends no sweep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import click
import dramatiq
from dramatiq import Retry
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import start_http_server
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError

from checkout_sweeper.cli.context import database_cause, load_settings, open_database
from checkout_sweeper.engine.scope import parse_scope
from checkout_sweeper.errors import (
    CommandFailure,
    ConfigError,
    ExitCode,
    LeaseError,
    SweepAborted,
    SweepCanceled,
    SweeperError,
)
from checkout_sweeper.logs import adopt_library_logs, setup_logging
from checkout_sweeper.metrics import QUEUE_EVENTS
from checkout_sweeper.runs import background
from checkout_sweeper.runs.fleet_rows import settle_parent
from checkout_sweeper.runs.jobs import (
    GIVEN_UP_ACTOR,
    QUEUE_NAME,
    SWEEP_ACTOR,
    end_queued_run,
    enqueue_sweep,
    make_broker,
    mark_queued_again,
    waited_s,
)
from checkout_sweeper.runs.launch import Asked, start_configured_sweep
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.runs.rows import end_abandoned_run, queued_run
from checkout_sweeper.runs.scheduler import ScheduleLoop
from checkout_sweeper.settings import BUSY_WAIT_S, QUEUE_URL, Settings, masked
from checkout_sweeper.store.database import Database
from checkout_sweeper.vocabulary import Trigger
from checkout_sweeper.web.quota import SWEEPS, counter_for, room, spend, user_key

log = logging.getLogger("checkout_sweeper.worker")
HANDED_BACK = "the worker is stopping: handed back to the queue"
STOP_TIMEOUT_MS = 60_000  # how long a stopping worker waits for its sweeps to record
DATABASE_OUT_OF_REACH = (OperationalError, InterfaceError)  # the server, not the statement
DATABASE_RETRIES = 10  # backoff from 1 s doubling to 15 s: about two minutes of tries


class SweepRunner:
    """The actor's body: one queued run taken up, run and recorded; the running ones known,
    so that a stopping worker can hand them back."""

    def __init__(self, settings: Settings, db: Database, broker: RedisBroker) -> None:
        self.settings, self.db, self.broker = settings, db, broker
        self.counter = counter_for(settings.ratelimit_storage_uri)
        self.running: dict[str, RecordedSweep] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, sweep_id: str) -> None:
        if self.stopping.is_set():  # a message taken while stopping goes back at once
            enqueue_sweep(self.broker, sweep_id)
            log.info("sweep %s left to another worker: this one is stopping", sweep_id)
            return
        try:
            self._take(sweep_id)
        except DATABASE_OUT_OF_REACH as err:
            cause = database_cause(err)
            log.warning("sweep %s waits: the database cannot be reached (%s)", sweep_id, cause)
            raise Retry(cause) from err  # tried again with backoff, without a traceback

    def _take(self, sweep_id: str) -> None:
        run = queued_run(self.db, sweep_id)
        if run is None:  # finished, canceled, or unknown: nothing to do
            log.info("sweep %s is not waiting for a worker; message dropped", sweep_id)
            QUEUE_EVENTS.labels("dropped").inc()
            return
        QUEUE_EVENTS.labels("resumed" if run["attempts"] else "taken").inc()
        try:
            self._run(run)
        finally:
            if run["parent_id"]:  # the last child of a fleet to end closes its parent
                settle_parent(self.db, run["parent_id"])

    def _run(self, run: dict[str, Any]) -> None:
        sweep_id = run["id"]
        try:
            sweep = self._take_up(run)
        except LeaseError as busy:
            if waited_s() < self.settings.busy_wait_s:
                log.info("sweep %s waits: %s", sweep_id, busy)
                raise Retry(str(busy)) from busy  # tried again later, without a traceback
            waited = f"{self.settings.busy_wait_s:g} s ({BUSY_WAIT_S.env})"
            self._give_up(sweep_id, f"the account stayed busy for {waited}: {busy}")
            return
        except SweepCanceled:
            log.info("sweep %s was canceled before it started", sweep_id)
            return
        except SweeperError as err:  # cannot start (live mode refused, Stripe, quota spent)
            end_queued_run(self.db, sweep_id, str(err))
            log.warning("sweep %s could not start: %s", sweep_id, err)
            return
        with self._lock:
            self.running[sweep_id] = sweep
        try:
            sweep.run()
        except SweepAborted as stopped:
            if isinstance(stopped, SweepCanceled) or not self.stopping.is_set():
                log.warning("sweep %s stopped: %s", sweep_id, stopped)
                return
            mark_queued_again(self.db, sweep_id)
            enqueue_sweep(self.broker, sweep_id)
            QUEUE_EVENTS.labels("handed_back").inc()
            log.info("sweep %s handed back to the queue", sweep_id)
        finally:
            with self._lock:
                self.running.pop(sweep_id, None)

    def _take_up(self, run: dict[str, Any]) -> RecordedSweep:
        """The run leased and recorded; a caller's sweep checks and spends their quota, a
        scheduled one none (the schedule is its owner's standing order)."""
        key = user_key(self.settings.ratelimit_key_prefix, run["user_id"] or 0)
        charged = run["trigger"] != Trigger.SCHEDULE and run["parent_id"] is None
        settings = self.settings  # a fleet's child acts on its connected account
        if run["stripe_account"]:
            settings = dataclasses.replace(settings, stripe_account=run["stripe_account"])

        def check() -> None:
            if charged:
                room(self.counter, SWEEPS, key)

        def count() -> None:
            if charged:
                spend(self.counter, SWEEPS, key)

        return start_configured_sweep(
            settings,
            self.db,
            trigger=run["trigger"],
            user_id=run["user_id"],
            # its scope as resolved when it first ran, if it did
            asked=Asked(parse_scope(run["scope"]), run["dry_run"]),
            once_leased=check,
            once_ran=count,
            sweep_id=run["id"],
        )

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
        if run["parent_id"]:
            settle_parent(self.db, run["parent_id"])

    def hand_back_all(self) -> None:
        """Stop dispatching in every sweep of this process; each records and goes back."""
        self.stopping.set()
        with self._lock:
            sweeps = list(self.running.values())
        for sweep in sweeps:
            sweep.interrupt(HANDED_BACK)


@click.command("worker")
@click.option(
    "--concurrency",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Sweeps this process runs at once (each paces its own account).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics on 127.0.0.1:N (--metrics-host to widen).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="HOST")
def worker_command(concurrency: int, metrics_port: int | None, metrics_host: str) -> None:
    """Run scheduled sweeps, and the sweeps the job queue carries (SWEEPER_QUEUE_URL).

    Without a queue, the worker runs the schedules' sweeps itself."""
    settings = load_settings()
    setup_logging(settings.server.log_level)  # a service: JSON lines for a log collector
    adopt_library_logs("dramatiq")
    if settings.queue_url:
        try:
            settings.check_queue()
        except ConfigError as err:
            raise CommandFailure(str(err), ExitCode.USAGE) from err
    db = open_database(settings)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    if not settings.queue_url:
        _run_schedules_here(settings, db)
        return
    broker = make_broker(settings)
    _warn_if_unreachable(broker, settings.queue_url)
    runner = SweepRunner(settings, db, broker)
    declare = dramatiq.actor(
        broker=broker,
        actor_name=SWEEP_ACTOR,
        queue_name=QUEUE_NAME,
        min_backoff=1_000,
        max_backoff=15_000,
        retry_when=_worth_retrying,
        on_retry_exhausted=GIVEN_UP_ACTOR,
    )
    declare(runner.__call__)
    dramatiq.actor(broker=broker, actor_name=GIVEN_UP_ACTOR, queue_name=QUEUE_NAME)(runner.given_up)
    _serve_until_stopped(broker, runner, concurrency, ScheduleLoop(settings, db, broker))


def _run_schedules_here(settings: Settings, db: Database) -> None:
    """No queue: this process starts each due slot's sweep itself, until SIGTERM or Ctrl-C
    (then the running ones record what they did and end ``interrupted``)."""
    with _stopped_by_signals() as stop:
        log.info("worker started: no job queue, running scheduled sweeps in this process")
        try:
            ScheduleLoop(settings, db, None).run_until(stop)
        finally:
            background.stop_all("the worker is stopping")
    log.info("worker stopped")


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM or Ctrl-C sets, while the block runs."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _warn_if_unreachable(broker: RedisBroker, url: str) -> None:
    """Say so at start when the queue's Redis does not answer; the worker waits for it."""
    try:
        broker.client.ping()
    except RedisError as err:
        log.warning("%s %s cannot be reached (%s); waiting for it", QUEUE_URL.env, masked(url), err)


def _worth_retrying(retries: int, error: Exception) -> bool:
    """The account is busy (its lease held): later, until ``SWEEPER_BUSY_WAIT`` has passed.
    The database out of reach: later, about two minutes' worth of tries. Anything else is
    recorded on the run."""
    if isinstance(error.__cause__, DATABASE_OUT_OF_REACH):
        return retries < DATABASE_RETRIES
    return isinstance(error, Retry)


def _serve_until_stopped(
    broker: RedisBroker, runner: SweepRunner, concurrency: int, schedules: ScheduleLoop
) -> None:
    with _stopped_by_signals() as stop:  # before anything starts: a signal always stops it
        worker = dramatiq.Worker(broker, worker_threads=concurrency, worker_timeout=500)
        worker.start()
        log.info("worker started", extra={"fields": {"threads": concurrency, "queue": QUEUE_NAME}})
        looking = threading.Thread(target=schedules.run_until, args=(stop,), name="schedules")
        looking.start()
        try:
            stop.wait()
        finally:
            stop.set()
            looking.join()
            log.info("worker stopping: running sweeps go back to the queue")
            runner.hand_back_all()
            worker.stop(timeout=STOP_TIMEOUT_MS)
            broker.close()
    log.info("worker stopped")

"""``worker``: a process that runs the sweeps the job queue carries (``SWEEPER_QUEUE_URL``), and
the schedules' sweeps; the queue's consumer (``runs.queue.consumer``) does the work, this
command adds signals and the metrics port. SIGTERM or Ctrl-C: no new message is taken, the
sweeps running here stop dispatching, record what is in flight and go back to the queue
(``queued``, not ``interrupted``), so a deploy ends no sweep.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import click
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from checkout_sweeper.cli.context import load_settings, open_database
from checkout_sweeper.errors import ConfigError, UsageRefused
from checkout_sweeper.logs import adopt_library_logs, setup_logging
from checkout_sweeper.runs.queue.pool import ConsumerPool, local_pool
from checkout_sweeper.runs.queue.producer import QUEUE_NAME, make_broker
from checkout_sweeper.runs.schedules import ScheduleLoop
from checkout_sweeper.settings import QUEUE_URL, masked

log = logging.getLogger("checkout_sweeper.worker")
STOP_TIMEOUT_S = 60.0  # how long a stopping worker waits for its sweeps to record


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
            raise UsageRefused(str(err)) from err
    db = open_database(settings)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    broker = make_broker(settings)
    if isinstance(broker, RedisBroker):
        assert settings.queue_url is not None
        _warn_if_queue_unreachable(broker, settings.queue_url)
        pool = ConsumerPool(settings, db, broker, concurrency)
    else:  # no queue: the schedules' sweeps run in this process, through the same consumer
        pool = local_pool(settings, db, broker, concurrency)
    _serve_until_stopped(pool, concurrency, ScheduleLoop(settings, db, broker))


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


def _warn_if_queue_unreachable(broker: RedisBroker, url: str) -> None:
    """Say so at start when the queue's Redis does not answer; the worker waits for it."""
    try:
        broker.client.ping()
    except RedisError as err:
        log.warning("%s %s cannot be reached (%s); waiting for it", QUEUE_URL.env, masked(url), err)


def _serve_until_stopped(pool: ConsumerPool, concurrency: int, schedules: ScheduleLoop) -> None:
    with _stopped_by_signals() as stop:  # before anything starts: a signal always stops it
        pool.start()
        log.info("worker started", extra={"fields": {"threads": concurrency, "queue": QUEUE_NAME}})
        looking = threading.Thread(target=schedules.run_until, args=(stop,), name="schedules")
        looking.start()
        try:
            stop.wait()
        finally:
            stop.set()
            looking.join()
            log.info("worker stopping: running sweeps record what they did")
            pool.stop(STOP_TIMEOUT_S, "the worker is stopping")
    log.info("worker stopped")

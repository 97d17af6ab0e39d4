"""The threads that take sweeps off the queue in one process: a Dramatiq worker running the
consumer, the same for the Redis queue (``checkout-sweeper worker``) and the in-process queue
of the embedded default (``serve`` and ``worker`` with no ``SWEEPER_QUEUE_URL``).

Stopping it stops every sweep of the process: on a durable queue each records what it did and
goes back for another worker; on the in-process queue each ends ``interrupted``, as do the
sweeps still waiting in it, so none reads ``queued`` after its process is gone.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker
from limits.strategies import RateLimiter

from checkout_sweeper.errors import SweepCanceled
from checkout_sweeper.runs.queue.consumer import SweepRunner, declare_actors, left_behind
from checkout_sweeper.runs.queue.producer import QUEUE_NAME, requeue_lost
from checkout_sweeper.runs.rows import cancel_asked, canceled_reason
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database

log = logging.getLogger("checkout_sweeper.worker")
WORKER_TIMEOUT_MS = 500  # how often an idle thread looks at the queue again
STOP_REASON = "the server is stopping"
CANCEL_POLL_S = 0.2  # how often the run rows are read for cancels of this process's sweeps
REQUEUE_EVERY = 50  # polls between looks for queued runs whose message was lost (10 s)


class ConsumerPool:
    """A consumer and its threads on ``broker``; ``start`` once, ``stop`` once."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker: Broker,
        threads: int,
        counter: RateLimiter | None = None,
    ) -> None:
        self.broker = broker
        self.runner = SweepRunner(settings, db, broker, counter)
        declare_actors(self.runner)
        self._worker = dramatiq.Worker(
            broker, worker_threads=threads, worker_timeout=WORKER_TIMEOUT_MS
        )
        self._stopped = threading.Event()
        self._watch = threading.Thread(target=self._watch_cancels, name="cancels", daemon=True)

    def start(self) -> None:
        """Start the threads (once: a second call changes nothing)."""
        if self._watch.is_alive() or self._stopped.is_set():
            return
        self._worker.start()
        self._watch.start()

    def _watch_cancels(self) -> None:
        """A cancel asked through another process reaches this one's sweeps within
        ``CANCEL_POLL_S``, not at their next audit write."""
        polls = 0
        while not self._stopped.wait(CANCEL_POLL_S):
            polls += 1
            try:
                stop_canceled(self.runner)
                if polls % REQUEUE_EVERY == 0:
                    requeue_lost(self.runner.db, self.broker)
            except Exception as err:  # the database or Redis away: the next poll tries again
                log.warning("cancels or lost messages not read: %s", err)

    def stop(self, timeout_s: float, reason: str = STOP_REASON) -> None:
        """Every sweep of this process stops dispatching and records what it did; then the
        threads end, within ``timeout_s``."""
        self._stopped.set()
        self.runner.hand_back_all(reason)
        self._worker.stop(timeout=int(timeout_s * 1000))
        if isinstance(self.broker, StubBroker):
            self._end_waiting()
        self.broker.close()

    def _end_waiting(self) -> None:
        """The in-process queue dies with the process: its waiting sweeps end now."""
        assert isinstance(self.broker, StubBroker)
        for name in (QUEUE_NAME, f"{QUEUE_NAME}.DQ"):
            waiting = self.broker.queues.get(name)
            while waiting is not None and not waiting.empty():
                message = dramatiq.Message.decode(waiting.get_nowait())
                left_behind(self.runner, message.args[0])


_local: dict[int, ConsumerPool] = {}  # the in-process pool of each broker, by its id
_lock = threading.Lock()


def local_pool(
    settings: Settings,
    db: Database,
    broker: Broker,
    threads: int,
    counter: RateLimiter | None = None,
) -> ConsumerPool:
    """The pool that consumes this process's in-process queue, started at its first use;
    ``counter`` the quota's, when the door keeps it in memory."""
    with _lock:
        pool = _local.get(id(broker))
        if pool is None:
            pool = _local[id(broker)] = ConsumerPool(settings, db, broker, threads, counter)
            pool.start()
            log.info("sweeps run in this process (no SWEEPER_QUEUE_URL)")
        return pool


def stop_local_pools(
    timeout_s: float, reason: str = STOP_REASON, broker: Broker | None = None
) -> None:
    """Stop the in-process pools of this process (gunicorn's ``worker_exit``), or the one
    of ``broker`` (an app that stops while its process goes on)."""
    with _lock:
        chosen = [key for key in _local if broker is None or key == id(broker)]
        pools = [_local.pop(key) for key in chosen]
    for pool in pools:
        pool.stop(timeout_s, reason)


def stop_canceled_here(sweep_ids: set[str]) -> None:
    """The sweeps of this process among ``sweep_ids`` stop now (their owner canceled them)."""
    with _lock:
        pools = list(_local.values())
    for pool in pools:
        stop_canceled(pool.runner, sweep_ids)


def stop_canceled(runner: SweepRunner, sweep_ids: set[str] | None = None) -> None:
    """Stop the runner's sweeps whose owner canceled them (those in ``sweep_ids``, or those
    whose run row says so): dispatch stops now, in-flight expires finish."""
    running = runner.running_now()
    if not running:
        return
    if sweep_ids is None:  # the watcher asks the run rows; a cancel here names its runs
        canceled = cancel_asked(runner.db, set(running))
    else:
        canceled = sweep_ids & set(running)
    for sweep_id in canceled:
        running[sweep_id].sweeper.abort(SweepCanceled(canceled_reason(runner.db, sweep_id)))

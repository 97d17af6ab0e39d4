"""Putting sweeps on the queue: the broker of ``SWEEPER_QUEUE_URL``, a queued run row and its
message, and the run's row when its message comes back or cannot be sent."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import cast

from dramatiq import Broker, Message, Middleware
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Retries,
    ShutdownNotifications,
)
from redis.exceptions import RedisError
from sqlalchemy import select, update

from checkout_sweeper.errors import QueueUnavailable
from checkout_sweeper.metrics import QUEUE_EVENTS
from checkout_sweeper.runs.launch import Asked, identified_gateway
from checkout_sweeper.runs.lease import this_process
from checkout_sweeper.runs.quota import redis_options
from checkout_sweeper.runs.rows import update_run
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database, rows_changed
from checkout_sweeper.store.models import SweepRun, utcnow
from checkout_sweeper.vocabulary import RunStatus

QUEUE_NAME = "sweeps"
SWEEP_ACTOR = "run_sweep"
GIVEN_UP_ACTOR = "sweep_given_up"  # told of a sweep's message the queue stopped trying
HEARTBEAT_TIMEOUT_MS = 15_000  # a worker silent this long is dead: its messages go back
MAINTENANCE_CHANCE = 50_000  # per million broker calls: a worker polls often, so within seconds
REDIS_TIMEOUT_S = 5.0  # every Redis call of the broker (it polls; it never blocks on a pop)
LOST_AFTER_S = 20.0  # a queued run with no message this long after it was queued: sent again


def make_broker(settings: Settings) -> Broker:
    """The broker of ``SWEEPER_QUEUE_URL``, or with none set an in-process one (the embedded
    default: the same consumer takes the sweeps up, in this process), with the middleware a
    sweep needs: retries (a sweep whose account is busy waits its turn), no time limit."""
    if settings.queue_url is None:
        return in_process_broker()
    broker = RedisBroker(  # type: ignore[no-untyped-call]  # dramatiq is untyped
        url=settings.queue_url,
        namespace=settings.queue_namespace,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
        middleware=_middleware(),
        **redis_options(REDIS_TIMEOUT_S),
    )
    broker.declare_queue(QUEUE_NAME)
    return broker


def in_process_broker() -> Broker:
    """A queue in this process's memory: its sweeps run here and end with the process."""
    broker = StubBroker(middleware=_middleware())
    broker.declare_queue(QUEUE_NAME)
    return broker


def _middleware() -> list[Middleware]:
    return [AgeLimit(), ShutdownNotifications(), Callbacks(), Retries(), CurrentMessage()]


def is_durable(broker: Broker) -> bool:
    """Whether the queue outlives this process (Redis), so a stopping worker hands its
    sweeps back; an in-process queue's sweeps end with the process (``interrupted``)."""
    return isinstance(broker, RedisBroker)


def enqueue_sweep(broker: Broker, sweep_id: str) -> None:
    """Send the sweep to whichever worker takes it first."""
    message: Message[None] = Message(
        queue_name=QUEUE_NAME, actor_name=SWEEP_ACTOR, args=(sweep_id,), kwargs={}, options={}
    )
    broker.enqueue(message)


def waited_s() -> float:
    """How long the message being processed has been on the queue, its retries included."""
    message = CurrentMessage.get_current_message()
    return 0.0 if message is None else time.time() - message.message_timestamp / 1000


def queue_depth(broker: Broker) -> int:
    """Messages waiting in the sweep queue (not those a worker holds)."""
    if isinstance(broker, StubBroker):
        return int(broker.queues[QUEUE_NAME].qsize())
    assert isinstance(broker, RedisBroker)
    return cast(int, broker.client.llen(f"{broker.namespace}:{QUEUE_NAME}"))


def record_queued(db: Database, run: dict[str, object], *, durable: bool = True) -> None:
    """The run row of a sweep waiting for a worker (no lease yet). Only a queue that outlives
    its process stamps ``queued_at``: a run it carries whose worker dies waits for the next
    worker. One of an in-process queue names the process whose memory holds it, and ends
    ``interrupted`` with it (``rows.mark_stale_runs``), even before it started."""
    if durable:
        where: dict[str, object] = {"queued_at": utcnow()}
    else:
        host, pid = this_process()
        where = {"queued_at": None, "host": host, "pid": pid}
    with db.session() as session:
        session.add(SweepRun(**run, **where, status=RunStatus.QUEUED, attempts=0))


def send_or_fail(db: Database, broker: Broker, sweep_id: str) -> None:
    """Enqueue the queued run, or end it ``failed`` and raise ``QueueUnavailable`` (503)."""
    try:
        enqueue_sweep(broker, sweep_id)
        QUEUE_EVENTS.labels("queued").inc()
    except RedisError as err:
        end_queued_run(db, sweep_id, "the job queue could not be reached")
        raise QueueUnavailable(f"the job queue cannot be reached: {err}") from err


def end_queued_run(db: Database, sweep_id: str, error: str, status: str = RunStatus.FAILED) -> None:
    """A queued run that could not start ends (``failed``, unless said), saying why."""
    _set_run(db, sweep_id, status=status, error=error, finished_at=utcnow())


def mark_queued_again(db: Database, sweep_id: str, attempt: int) -> bool:
    """A sweep handed back (its worker is stopping, or lost its lease while the database was
    away): waiting for the next worker, unless another attempt took it up meanwhile or its
    owner canceled it. Whether it was."""
    with db.session() as session:
        statement = (
            update(SweepRun)
            .where(SweepRun.id == sweep_id, SweepRun.attempts == attempt)
            .where(SweepRun.status != RunStatus.CANCELED)
            .values(status=RunStatus.QUEUED, finished_at=None, error=None)
        )
        return rows_changed(session, statement) == 1


def _set_run(db: Database, sweep_id: str, **values: object) -> None:
    with db.session() as session:
        update_run(session, sweep_id, values)


def record_run(
    settings: Settings,
    db: Database,
    broker: Broker,
    *,
    trigger: str,
    user_id: int | None,
    asked: Asked,
) -> str:
    """The queued row of a run of the configured account, its message not sent yet (a
    fleet records every child before any can run and settle the fleet); the sweep id."""
    gateway = identified_gateway(settings, db, dry_run=asked.dry_run)
    sweep_id = uuid.uuid4().hex
    run: dict[str, object] = {"id": sweep_id, "trigger": trigger, "user_id": user_id}
    run.update(dry_run=asked.dry_run, account=gateway.account, livemode=gateway.livemode)
    run.update(asked.row)
    run["scope"] = asked.scope.stored()
    record_queued(db, run, durable=is_durable(broker))
    return sweep_id


def requeue_lost(db: Database, broker: Broker, older_than_s: float = LOST_AFTER_S) -> list[str]:
    """Runs that read ``queued`` on the Redis queue for a while but have no message anywhere
    in it (not waiting, not delayed for a retry, not held by a worker: a Redis restart or a
    blip lost it) are sent again, so every accepted sweep ends. One worker at a time does
    this (a short lock in Redis); the runs sent again, by id."""
    if not isinstance(broker, RedisBroker) or not broker.client.set(
        f"{broker.namespace}:requeue-lock", "1", nx=True, ex=int(older_than_s)
    ):
        return []
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with db.session() as session:
        waiting = select(SweepRun.id).where(
            SweepRun.status == RunStatus.QUEUED, SweepRun.queued_at < cutoff
        )
        candidates = set(session.scalars(waiting))
    lost = sorted(candidates - _carried(broker))
    for sweep_id in lost:
        enqueue_sweep(broker, sweep_id)
        QUEUE_EVENTS.labels("requeued").inc()
    return lost


def _carried(broker: RedisBroker) -> set[str]:
    """The sweep ids of every message the queue holds: waiting, delayed, or in a worker's
    hands until it acknowledges it."""
    carried: set[str] = set()
    for name in (QUEUE_NAME, f"{QUEUE_NAME}.DQ"):
        held = cast(list[bytes], broker.client.hvals(f"{broker.namespace}:{name}.msgs"))
        for raw in held:
            carried.add(str(Message.decode(raw).args[0]))
    return carried

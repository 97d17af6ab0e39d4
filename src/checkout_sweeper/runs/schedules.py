"""Schedules: recurring scoped sweeps kept in the database, and their slots.

A slot is a moment a schedule should run: every ``every_s`` seconds from its creation, or each
moment its cron expression names (UTC). A worker that finds a slot due claims it by moving the
schedule's ``last_slot_at`` forward in one conditional UPDATE; only one worker's UPDATE can
change the row, so two workers never start the same slot. Slots missed while no worker ran are
not made up one by one: the latest one due runs, once.

``ScheduleLoop`` is the loop in ``checkout-sweeper worker``: every few seconds it claims the
slots that are due and starts each one's sweep as an ordinary run with ``trigger: schedule``.
A slot whose sweep cannot start (the account already being swept, Stripe refusing the key) is
logged and counted; the next slot tries again. A schedule that cannot be worked out (a row no
door would write) is logged and skipped, and never stops the others.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from croniter import croniter
from dramatiq import Broker
from sqlalchemy import func, or_, select, update

from checkout_sweeper.engine.durations import parse_duration
from checkout_sweeper.engine.scope import AGE, Scope, parse_scope
from checkout_sweeper.errors import ScheduleInvalid, SweeperError, TooManySchedules
from checkout_sweeper.metrics import SCHEDULED_SLOTS
from checkout_sweeper.runs.checks import Services, schedule_caller
from checkout_sweeper.runs.launch import Asked
from checkout_sweeper.runs.submit import submit_sweep
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database, rows_changed
from checkout_sweeper.store.models import CRON_MAX, Schedule, utc_iso, utcnow

log = logging.getLogger("checkout_sweeper.scheduler")
MIN_EVERY_S = 60  # a sweep lists the whole scope: more often than a minute only costs quota
MAX_EVERY_S = 365 * 86400  # longer periods are calendar dates: a cron expression says them
SCHEDULE_ID = re.compile(r"sch_[0-9a-f]{20}")  # what schedules are named: see add_schedule


@dataclass(frozen=True)
class Cadence:
    """When a schedule runs: a period or a cron expression, exactly one of them."""

    every_s: int | None = None
    cron: str | None = None

    @classmethod
    def read(cls, every: str | None, cron: str | None) -> Cadence:
        if every is None and cron is None:
            raise ScheduleInvalid("give a period (every) or a cron expression (cron)")
        if every is not None and cron is not None:
            raise ScheduleInvalid("give either a period (every) or a cron expression, not both")
        if every is not None:
            return cls(every_s=_period(every))
        assert cron is not None
        return cls(cron=_cron(cron))

    def latest_slot(self, created_at: datetime, now: datetime) -> datetime | None:
        """The latest slot at or before ``now`` (none before the first one)."""
        if self.every_s is not None:
            periods = int((now - created_at).total_seconds() // self.every_s)
            return created_at + timedelta(seconds=periods * self.every_s) if periods else None
        assert self.cron is not None
        slot: datetime = croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime)
        return slot if slot > created_at else None


def _period(every: str) -> int:
    if not AGE.fullmatch(every):
        raise ScheduleInvalid(f"expected a period such as 15m, 1h or 1d, got {every[:40]!r}")
    seconds = parse_duration(every)
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise ScheduleInvalid(
            f"the period must be from {MIN_EVERY_S}s (1m) to {MAX_EVERY_S // 86400}d, "
            f"got {every!r}; a cron expression says calendar dates"
        )
    return seconds


def _cron(cron: str) -> str:
    """Five cron fields that name a moment that comes: ``0 0 31 2 *`` (31 February) is
    refused here, or every tick of every worker would fail on it."""
    if len(cron) > CRON_MAX or not all(" " <= char <= "~" for char in cron):
        raise ScheduleInvalid(
            f"a cron expression is at most {CRON_MAX} printable ASCII characters and spaces"
        )
    if not croniter.is_valid(cron) or len(cron.split()) != 5:
        raise ScheduleInvalid(
            f"not a cron expression of five fields (minute hour day month weekday): {cron!r}"
        )
    now = datetime.now(UTC)
    try:
        croniter(cron, now).get_next(datetime)
        croniter(cron, now).get_prev(datetime)
    except Exception:  # CroniterBadDateError, or what else croniter raises on a field
        raise ScheduleInvalid(
            f"the cron expression {cron!r} names no date that exists (such as 31 February), "
            "so it would never run"
        ) from None
    return cron


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ScheduleJson(TypedDict):
    """A schedule as ``/v1/schedules`` and ``schedules list --json`` show it."""

    id: str
    user_id: int | None
    every: int | None  # seconds
    cron: str | None
    scope: dict[str, object]
    dry_run: bool
    created_at: str | None  # ISO 8601 in UTC
    last_slot_at: str | None


def schedule_json(schedule: Schedule) -> ScheduleJson:
    return {
        "id": schedule.id,
        "user_id": schedule.user_id,
        "every": schedule.every_s,
        "cron": schedule.cron,
        "scope": json.loads(schedule.scope),
        "dry_run": schedule.dry_run,
        "created_at": utc_iso(schedule.created_at),
        "last_slot_at": utc_iso(schedule.last_slot_at),
    }


def add_schedule(
    db: Database,
    cadence: Cadence,
    scope: Scope,
    *,
    dry_run: bool,
    user_id: int | None,
    most: int | None = None,
) -> ScheduleJson:
    """A new schedule; ``TooManySchedules`` when its owner keeps ``most`` already."""
    with db.session() as session:
        if most is not None and user_id is not None:
            kept = select(func.count()).select_from(Schedule).where(Schedule.user_id == user_id)
            if (session.scalar(kept) or 0) >= most:
                raise TooManySchedules(most)
        schedule = Schedule(
            id="sch_" + uuid.uuid4().hex[:20],
            user_id=user_id,
            every_s=cadence.every_s,
            cron=cadence.cron,
            scope=json.dumps(scope.as_dict()),
            dry_run=dry_run,
            created_at=utcnow(),
        )
        session.add(schedule)
        session.flush()
        return schedule_json(schedule)


def list_schedules(db: Database, user_id: int | None = None) -> list[ScheduleJson]:
    """Every schedule (``user_id`` None), or one user's."""
    with db.session() as session:
        query = select(Schedule).order_by(Schedule.created_at)
        if user_id is not None:
            query = query.where(Schedule.user_id == user_id)
        return [schedule_json(schedule) for schedule in session.scalars(query)]


def remove_schedule(db: Database, schedule_id: str, user_id: int | None = None) -> bool:
    """Remove it (only its owner's, when ``user_id`` is given); False if there was none (an id
    no schedule can have is not looked up: a NUL byte is no text PostgreSQL takes)."""
    if not SCHEDULE_ID.fullmatch(schedule_id):
        return False
    with db.session() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None or (user_id is not None and schedule.user_id != user_id):
            return False
        session.delete(schedule)
        return True


@dataclass(frozen=True)
class DueSlot:
    """A slot this worker claimed: run the schedule's sweep once for it."""

    schedule_id: str
    slot: datetime
    user_id: int | None
    scope: Scope
    dry_run: bool


def claim_due_slots(db: Database, now: datetime) -> list[DueSlot]:
    """The slots due at ``now`` that this caller won; each is won by exactly one caller. A
    schedule that cannot be worked out (a row no door would write, such as a cron expression
    that names no date) is logged and skipped: the others' slots are claimed all the same."""
    with db.session() as session:
        candidates = [
            _readable_due(schedule, now) for schedule in session.scalars(select(Schedule))
        ]
    return [due for due in candidates if due is not None and _claim(db, due.schedule_id, due.slot)]


def _readable_due(schedule: Schedule, now: datetime) -> DueSlot | None:
    try:
        return _due(schedule, now)
    except Exception:
        log.exception("schedule %s cannot be worked out, so it is skipped", schedule.id)
        SCHEDULED_SLOTS.labels("error").inc()
        return None


def _due(schedule: Schedule, now: datetime) -> DueSlot | None:
    """The schedule's latest slot due at ``now``, unless it has run already."""
    cadence = Cadence(schedule.every_s, schedule.cron)
    if (cadence.every_s is None) == (cadence.cron is None):
        raise ScheduleInvalid("a schedule has a period or a cron expression, one of them")
    slot = cadence.latest_slot(_aware(schedule.created_at), now)
    last = schedule.last_slot_at
    if slot is None or (last is not None and slot <= _aware(last)):
        return None
    scope = parse_scope(json.loads(schedule.scope))
    return DueSlot(schedule.id, slot, schedule.user_id, scope, schedule.dry_run)


def _claim(db: Database, schedule_id: str, slot: datetime) -> bool:
    claim = (
        update(Schedule)
        .where(Schedule.id == schedule_id)
        .where(or_(Schedule.last_slot_at.is_(None), Schedule.last_slot_at < slot))
        .values(last_slot_at=slot)
    )
    with db.session() as session:
        return rows_changed(session, claim) == 1


TICK_S = 5.0  # how often due slots are looked for: a slot starts at most this late


class ScheduleLoop:
    """Claims due slots and starts their sweeps until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker: Broker,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings, self.db, self.broker = settings, db, broker
        self.clock = clock

    def run_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the database away for a moment: the next tick tries again
                log.exception("looking for due schedules failed")
                SCHEDULED_SLOTS.labels("error").inc()
            stop.wait(TICK_S)

    def tick(self) -> list[str]:
        """Start the sweep of every slot due now that this worker won; their sweep ids."""
        started = []
        for slot in claim_due_slots(self.db, self.clock()):
            try:
                started.append(self._start(slot))
                SCHEDULED_SLOTS.labels("started").inc()
            except SweeperError as err:
                log.warning(
                    "schedule %s: the sweep of slot %s could not start: %s",
                    slot.schedule_id,
                    slot.slot.isoformat(),
                    err,
                )
                SCHEDULED_SLOTS.labels("not_started").inc()
            except Exception:  # this slot's alone: the other slots still start
                log.exception(
                    "schedule %s: the sweep of slot %s failed to start",
                    slot.schedule_id,
                    slot.slot.isoformat(),
                )
                SCHEDULED_SLOTS.labels("error").inc()
        return started

    def _start(self, slot: DueSlot) -> str:
        """The slot's sweep, through the checks every door makes (its owner's customer
        rule included), queued for the consumer (on the job queue, or in this process)."""
        asked = Asked(slot.scope, slot.dry_run, {"schedule_id": slot.schedule_id})
        owner = schedule_caller(self.db, slot.user_id)
        services = Services(self.settings, self.db, self.broker)
        return submit_sweep(owner, services, asked).sweep_id

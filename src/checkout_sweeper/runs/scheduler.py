"""The loop in ``checkout-sweeper worker`` that starts scheduled sweeps, one per slot.

Every few seconds it claims the slots that are due (``schedules.claim_due_slots``: one worker
wins each) and starts each one's sweep as an ordinary run with ``trigger: schedule``: on the
job queue when there is one (any worker takes it up), else here, in a thread of this process.
A slot whose sweep cannot start (the account already being swept, Stripe refusing the key) is
logged and counted; the next slot tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from dramatiq.brokers.redis import RedisBroker

from checkout_sweeper.errors import SweeperError
from checkout_sweeper.metrics import SCHEDULED_SLOTS
from checkout_sweeper.runs import background
from checkout_sweeper.runs.jobs import queue_run
from checkout_sweeper.runs.launch import Asked, start_configured_sweep
from checkout_sweeper.runs.schedules import DueSlot, claim_due_slots
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.vocabulary import Trigger

log = logging.getLogger("checkout_sweeper.scheduler")
TICK_S = 5.0  # how often due slots are looked for: a slot starts at most this late


class ScheduleLoop:
    """Claims due slots and starts their sweeps until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker: RedisBroker | None,
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
        return started

    def _start(self, slot: DueSlot) -> str:
        asked = Asked(slot.scope, slot.dry_run, {"schedule_id": slot.schedule_id})
        if self.broker is None:
            sweep = start_configured_sweep(
                self.settings,
                self.db,
                trigger=Trigger.SCHEDULE,
                user_id=slot.user_id,
                asked=asked,
            )
            background.start(sweep)
            return sweep.sweep_id
        return queue_run(
            self.settings,
            self.db,
            self.broker,
            trigger=Trigger.SCHEDULE,
            user_id=slot.user_id,
            asked=asked,
        )

"""A fleet swept in this process: its accounts in a bounded pool of threads.

At most ``parallel`` accounts run at once in this process: each account has its own Stripe
limit, so the work is parallel across accounts and bound by Stripe within one. An account that
refuses (no access for the platform, another sweep holding it, Stripe failing) fails its own
child with the reason; the others go on and the parent says ``partial``. A second run sweeps
what is still open, so it finishes what the first left.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from checkout_sweeper.errors import SweepAborted, SweeperError
from checkout_sweeper.runs.accounts import identify
from checkout_sweeper.runs.fleet.result import AccountOutcome, FleetResult
from checkout_sweeper.runs.fleet.rows import (
    FleetPlan,
    child_row,
    record_parent,
    record_refusal,
)
from checkout_sweeper.runs.launch import start_configured_sweep
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.runs.rows import run_status, update_run
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import utcnow
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

log = logging.getLogger("checkout_sweeper.fleet")
STOPPED = "not started: the fleet sweep was stopped"


class FleetSweep:
    """One fleet sweep: the parent run, then each account's sweep in a bounded pool."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        platform: StripeGateway,
        plan: FleetPlan,
        on_account: Callable[[AccountOutcome], None] | None = None,
    ) -> None:
        scope = plan.asked.scope.resolved(time.time())  # one cutoff for every account
        plan = dataclasses.replace(plan, asked=dataclasses.replace(plan.asked, scope=scope))
        self.settings, self.db, self.platform, self.plan = settings, db, platform, plan
        self.sweep_id = uuid.uuid4().hex
        self._on_account = on_account or (lambda outcome: None)
        self._running: dict[str, RecordedSweep] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._begun = False

    def run(self) -> FleetResult:
        """Sweep every account; on an interrupt (Ctrl-C) the running ones stop and record
        what they did, the others never start, and the interrupt goes on up."""
        started = time.monotonic()
        self.begin()
        result = FleetResult(
            self.sweep_id, self.plan.asked.dry_run, scope=self.plan.asked.scope.shown()
        )
        pool = ThreadPoolExecutor(max(1, self.plan.parallel), thread_name_prefix="fleet")
        try:
            result.accounts = list(pool.map(self._sweep_account, self.plan.accounts))
        except BaseException:
            self.interrupt("the fleet sweep was interrupted")
            result.interrupted = True
            raise
        finally:
            pool.shutdown(wait=True)
            result.duration_ms = int((time.monotonic() - started) * 1000)
            self._close_parent(result)
        return result

    def begin(self) -> None:
        """The parent run, recorded once (before ``run``, so that it can be followed at once)."""
        if not self._begun:
            record_parent(self.db, self.sweep_id, self.plan, self.platform, RunStatus.RUNNING)
            self._begun = True

    def interrupt(self, reason: str) -> None:
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for sweep in running:
            sweep.interrupt(reason)

    def _sweep_account(self, account: str) -> AccountOutcome:
        outcome = self._outcome_of(account)
        self._on_account(outcome)
        return outcome

    def _outcome_of(self, account: str) -> AccountOutcome:
        if self._stopping.is_set():
            return AccountOutcome(account, None, RunStatus.INTERRUPTED, error=STOPPED)
        gateway = self.platform.for_account(account)
        try:
            sweep = self._started(account, gateway)
        except SweeperError as err:
            log.info("account %s could not be swept: %s", account, err)
            row = child_row(self.sweep_id, self.plan, account, gateway.livemode)
            child_id = record_refusal(self.db, row, str(err))
            return AccountOutcome(account, child_id, RunStatus.FAILED, error=str(err))
        with self._lock:
            self._running[account] = sweep
        try:
            result = sweep.run()
        except SweepAborted as stopped:
            status = run_status(self.db, sweep.sweep_id) or RunStatus.FAILED
            return AccountOutcome(account, sweep.sweep_id, status, stopped.result, str(stopped))
        finally:
            with self._lock:
                self._running.pop(account, None)
        status = RunStatus.SUCCEEDED if result.succeeded else RunStatus.INCOMPLETE
        return AccountOutcome(account, sweep.sweep_id, status, result)

    def _started(self, account: str, gateway: StripeGateway) -> RecordedSweep:
        identify(self.db, gateway)
        return start_configured_sweep(
            dataclasses.replace(self.settings, stripe_account=account),
            self.db,
            trigger=self.plan.trigger,
            user_id=self.plan.user_id,
            asked=self.plan.asked.of_account(self.sweep_id, account),
            gateway=gateway,
        )

    def _close_parent(self, result: FleetResult) -> None:
        data = result.as_data()
        values = {
            "status": result.status,
            "finished_at": utcnow(),
            "expired_count": data["expired_count"],
            "already_closed_count": data["already_closed_count"],
            "failed_count": len(data["failed"]),
            "remaining_count": data["remaining_open_count"],
            "stripe_requests": data["stripe_requests"],
            "result": json.dumps(data, default=str),
            "error": "; ".join(f"{f['account']}: {f['error']}" for f in data["failed_accounts"])
            or None,
        }
        try:
            with self.db.session() as session:
                update_run(session, self.sweep_id, values)
        except Exception:  # the children's rows say what each did; the parent's sums are lost
            log.exception("fleet sweep %s: its parent run could not be closed", self.sweep_id)
            raise

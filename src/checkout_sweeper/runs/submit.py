"""Start a sweep for a caller, whatever the door: the refusal checks of the product contract in
their order, the caller's quota (one call reserved at the door, given back when the sweep
could do nothing for a reason of the server's), and where the sweep runs (in the caller's thread,
or queued for the consumer: on the job queue, or on the in-process queue of the embedded
default, so a sweep in the background has one path).

The seed endpoint, ``POST /v1/sweeps``, fleets, schedules (when added and when they fire) and
the command line all come through here, so a rule written here holds on every door. The
doors only authenticate, read what was asked and print the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from dramatiq import Broker

from checkout_sweeper.engine.sweeper import SweepProgress, SweepResult
from checkout_sweeper.errors import FleetEmpty, FleetTooLarge
from checkout_sweeper.runs.checks import (
    Caller,
    QuotaSeen,
    Services,
    did_nothing,
    give_back_call,
    refuse,
    reserve_call,
)
from checkout_sweeper.runs.fleet.queued import queue_fleet
from checkout_sweeper.runs.fleet.rows import FleetPlan
from checkout_sweeper.runs.launch import (
    Asked,
    identified_gateway,
    start_configured_sweep,
)
from checkout_sweeper.runs.queue.pool import local_pool
from checkout_sweeper.runs.queue.producer import is_durable, record_run, send_or_fail
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

MAX_FLEET_ACCOUNTS = 100  # accounts one fleet sweeps: one call of the quota covers them


@dataclass(frozen=True)
class Submitted:
    """A sweep that passed every check: its id and status, and, when the caller runs it in
    its own thread, the leased sweep (``run`` it through here, so that the quota is given
    back if it can do nothing)."""

    sweep_id: str
    status: str
    sweep: RecordedSweep | None = None
    caller: Caller | None = None
    services: Services | None = None

    def run(self) -> SweepResult:
        assert self.sweep is not None, "a queued sweep runs in the consumer"
        started = time.monotonic()
        try:
            return self.sweep.run()
        except Exception as err:
            if self.caller and self.services and did_nothing(err):
                give_back_call(self.caller, self.services, time.monotonic() - started)
            raise


def _queue(services: Services) -> Broker:
    """The job queue, its consumer running in this process when the queue is in-process
    (the embedded default: one path for every sweep in the background, queue or none)."""
    assert services.broker is not None, "a sweep in the background needs a queue"
    if not is_durable(services.broker):
        local_pool(
            services.settings, services.db, services.broker, services.threads, services.counter
        )
    return services.broker


def submit_sweep(
    caller: Caller,
    services: Services,
    asked: Asked,
    *,
    in_thread: bool = False,
    quota_seen: QuotaSeen | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    gateway: StripeGateway | None = None,
) -> Submitted:
    """Every check and a call of the quota, then the sweep: leased and recorded here, to run
    in the caller's thread (``in_thread``), or queued for the consumer (on the job queue, or
    in this process). Nothing started: the call is given back."""
    refuse(caller, services, dry_run=asked.dry_run)
    reserve_call(caller, services, quota_seen)
    try:
        if not in_thread:
            return Submitted(_queued(caller, services, asked), RunStatus.QUEUED)
        sweep = start_configured_sweep(
            services.settings,
            services.db,
            trigger=caller.trigger,
            user_id=caller.user_id,
            asked=asked,
            on_progress=on_progress,
            gateway=gateway,
            in_request=caller.charged,
        )
    except Exception:
        give_back_call(caller, services)
        raise
    return Submitted(sweep.sweep_id, RunStatus.RUNNING, sweep, caller, services)


def _queued(caller: Caller, services: Services, asked: Asked) -> str:
    """A queued run and its message; the sweep id."""
    broker = _queue(services)
    sweep_id = record_run(
        services.settings,
        services.db,
        broker,
        trigger=caller.trigger,
        user_id=caller.user_id,
        asked=asked,
    )
    send_or_fail(services.db, broker, sweep_id)
    return sweep_id


def submit_fleet(
    caller: Caller,
    services: Services,
    asked: Asked,
    accounts: str | list[str],
    *,
    quota_seen: QuotaSeen | None = None,
) -> Submitted:
    """A fleet: the same checks as one account (the account's own lease is each child's),
    then the connected accounts (``"all"``, or those named; at most ``MAX_FLEET_ACCOUNTS``)
    queued for the consumer as children of one parent, which the last of them to end
    settles; one call of the caller's quota, reserved once the accounts are known."""
    refuse(caller, services, dry_run=asked.dry_run, busy=False)
    platform = identified_gateway(services.settings, services.db, dry_run=asked.dry_run)
    chosen = platform.connected_accounts() if accounts == "all" else list(accounts)
    if not chosen:
        raise FleetEmpty()
    if len(chosen) > MAX_FLEET_ACCOUNTS:
        raise FleetTooLarge(len(chosen), MAX_FLEET_ACCOUNTS)
    asked = replace(asked, scope=asked.scope.resolved(time.time()))  # one cutoff for all
    plan = FleetPlan(chosen, asked, caller.trigger, caller.user_id)
    reserve_call(caller, services, quota_seen)
    try:
        parent_id = queue_fleet(services.settings, services.db, _queue(services), platform, plan)
    except Exception:
        give_back_call(caller, services)
        raise
    return Submitted(parent_id, RunStatus.RUNNING)

"""Start a sweep for a caller, whatever the door: the refusal checks of the product contract in
their order, the quota's check-then-charge, and where the sweep runs (in the caller's thread,
in the background, or on the job queue).

The seed endpoint, ``POST /v1/sweeps``, fleets, schedules (when added and when they fire) and
the command line all come through here, so a rule written here holds on every door. The
doors only authenticate, read what was asked and print the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from dramatiq.brokers.redis import RedisBroker
from limits.strategies import RateLimiter

from checkout_sweeper.engine.sweeper import SweepProgress
from checkout_sweeper.errors import CustomerRefused
from checkout_sweeper.runs import background
from checkout_sweeper.runs.fleet.local import FleetSweep
from checkout_sweeper.runs.fleet.queued import queue_fleet
from checkout_sweeper.runs.fleet.result import AccountOutcome
from checkout_sweeper.runs.fleet.rows import FLEET_PARALLEL, FleetPlan
from checkout_sweeper.runs.launch import (
    Asked,
    identified_gateway,
    refuse_early,
    start_configured_sweep,
)
from checkout_sweeper.runs.queue.producer import queue_run
from checkout_sweeper.runs.quota import SWEEPS, counter_for, room, spend, user_key
from checkout_sweeper.runs.recorded_sweep import RecordedSweep
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.users import find_user
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus, Trigger

QuotaSeen = Callable[[dict[str, str]], None]  # the X-RateLimit headers, each time they change


@dataclass(frozen=True)
class Caller:
    """Who asks for a sweep. An API user spends their quota and must have no Stripe customer
    (the spec's 409); the operator at the command line and a schedule's slot spend nothing."""

    trigger: str
    user_id: int | None = None
    stripe_customer_id: str | None = None
    charged: bool = False


OPERATOR = Caller(Trigger.CLI)


def api_caller(user_id: int, stripe_customer_id: str | None) -> Caller:
    return Caller(Trigger.API, user_id, stripe_customer_id, charged=True)


def schedule_caller(db: Database, user_id: int | None) -> Caller:
    """A schedule's owner as they are now: a customer gained since it was added refuses it."""
    user = find_user(db, user_id) if user_id is not None else None
    return Caller(Trigger.SCHEDULE, user_id, user.stripe_customer_id if user else None)


def queued_caller(trigger: str, user_id: int | None, *, child: bool) -> Caller:
    """Who queued a run, for its quota: the API caller of a single sweep is charged when it
    runs; a schedule's slot and a fleet's child (its parent took the unit) are not."""
    return Caller(trigger, user_id, charged=trigger == Trigger.API and not child)


@dataclass(frozen=True)
class Services:
    """What starting a sweep needs: the settings, the database, the job queue when there is
    one, and the counters of the per-user quota."""

    settings: Settings
    db: Database
    broker: RedisBroker | None = None
    counter: RateLimiter | None = None

    def quota_counter(self) -> RateLimiter:
        return self.counter or counter_for(self.settings.ratelimit_storage_uri)


@dataclass(frozen=True)
class Submitted:
    """A sweep that passed every check: its id and status, and, when the caller runs it in
    its own thread, the leased sweep to ``run``."""

    sweep_id: str
    status: str
    sweep: RecordedSweep | None = None
    fleet: FleetSweep | None = None


def refuse(caller: Caller, services: Services, *, dry_run: bool, busy: bool = True) -> None:
    """The checks that need no Stripe request, in the contract's order, before any quota is
    spent: a user with a Stripe customer (409), a live-mode key not allowed (403; a dry run
    from the command line only reads), a sweep of the account already running (409)."""
    if caller.stripe_customer_id:
        raise CustomerRefused(caller.stripe_customer_id)
    reads_only = dry_run and not caller.charged
    refuse_early(services.settings, services.db, reads_only=reads_only, busy=busy)


def quota_hooks(
    caller: Caller, services: Services, seen: QuotaSeen | None = None
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The quota's check (once the lease is taken) and charge (once the sweep has run, so a
    sweep that failed for a server-side reason spends nothing); nothing for an uncharged
    caller."""
    if not caller.charged or caller.user_id is None:
        return (lambda: None), (lambda: None)
    counter = services.quota_counter()
    key = user_key(services.settings.ratelimit_key_prefix, caller.user_id)
    tell = seen or (lambda headers: None)
    return (lambda: tell(room(counter, SWEEPS, key))), (lambda: tell(spend(counter, SWEEPS, key)))


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
    """Every check, then the sweep: queued when there is a job queue, else leased and recorded
    here and either handed back to run in the caller's thread (``in_thread``) or started in
    the background."""
    refuse(caller, services, dry_run=asked.dry_run)
    check, charge = quota_hooks(caller, services, quota_seen)
    if services.broker is not None:
        check()  # the worker checks again once leased, and charges once it has run
        return Submitted(_queued(caller, services, services.broker, asked), RunStatus.QUEUED)
    sweep = start_configured_sweep(
        services.settings,
        services.db,
        trigger=caller.trigger,
        user_id=caller.user_id,
        asked=asked,
        on_progress=on_progress,
        once_leased=check,
        once_ran=charge,
        gateway=gateway,
        in_request=in_thread and caller.charged,
    )
    if in_thread:
        return Submitted(sweep.sweep_id, RunStatus.RUNNING, sweep)
    background.start(sweep)
    return Submitted(sweep.sweep_id, RunStatus.RUNNING)


def _queued(caller: Caller, services: Services, broker: RedisBroker, asked: Asked) -> str:
    return queue_run(
        services.settings,
        services.db,
        broker,
        trigger=caller.trigger,
        user_id=caller.user_id,
        asked=asked,
    )


def submit_fleet(
    caller: Caller,
    services: Services,
    asked: Asked,
    accounts: str | list[str],
    *,
    quota_seen: QuotaSeen | None = None,
    in_thread: bool = False,
    on_account: Callable[[AccountOutcome], None] | None = None,
    parallel: int = FLEET_PARALLEL,
) -> Submitted:
    """A fleet: the same checks as one account (the account's own lease is each child's),
    then the connected accounts (``"all"``, or those named) swept as children of one parent,
    on the job queue, in the background or in the caller's thread (``in_thread``: the fleet
    to ``run``); one unit of the caller's quota."""
    refuse(caller, services, dry_run=asked.dry_run, busy=False)
    platform = identified_gateway(services.settings, services.db, dry_run=asked.dry_run)
    check, charge = quota_hooks(caller, services, quota_seen)
    check()
    chosen = platform.connected_accounts() if accounts == "all" else list(accounts)
    asked = replace(asked, scope=asked.scope.resolved(time.time()))  # one cutoff for all
    plan = FleetPlan(chosen, asked, caller.trigger, caller.user_id, parallel)
    if services.broker is not None and not in_thread:
        parent_id = queue_fleet(services.settings, services.db, services.broker, platform, plan)
        charge()
        return Submitted(parent_id, RunStatus.RUNNING)
    fleet = FleetSweep(services.settings, services.db, platform, plan, on_account)
    if in_thread:
        return Submitted(fleet.sweep_id, RunStatus.RUNNING, fleet=fleet)
    background.start_fleet(fleet, charge)
    return Submitted(fleet.sweep_id, RunStatus.RUNNING)

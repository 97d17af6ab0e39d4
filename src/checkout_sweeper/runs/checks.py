"""Who asks for a sweep, and the checks made for them on every door: the contract's refusals
in their order (a user with a Stripe customer, a live-mode key, a busy account) and the
quota's check-then-charge."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dramatiq import Broker
from limits.strategies import RateLimiter

from checkout_sweeper.errors import CustomerRefused, SweepAborted, SweepCanceled
from checkout_sweeper.runs.fleet.rows import FLEET_PARALLEL
from checkout_sweeper.runs.launch import refuse_early
from checkout_sweeper.runs.quota import SWEEPS, counter_for, give_back, reserve, user_key
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.users import find_user
from checkout_sweeper.vocabulary import Trigger

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
    broker: Broker | None = None
    counter: RateLimiter | None = None
    threads: int = FLEET_PARALLEL  # sweeps (a fleet's accounts) an in-process queue runs at once

    def quota_counter(self) -> RateLimiter:
        return self.counter or counter_for(self.settings.ratelimit_storage_uri)


def refuse(caller: Caller, services: Services, *, dry_run: bool, busy: bool = True) -> None:
    """The checks that need no Stripe request, in the contract's order, before any quota is
    spent: a user with a Stripe customer (409), a live-mode key not allowed (403; a dry run
    from the command line only reads), a sweep of the account already running (409)."""
    if caller.stripe_customer_id:
        raise CustomerRefused(caller.stripe_customer_id)
    reads_only = dry_run and not caller.charged
    refuse_early(services.settings, services.db, reads_only=reads_only, busy=busy)


def reserve_call(caller: Caller, services: Services, seen: QuotaSeen | None = None) -> None:
    """One call of the caller's quota, taken at the door, before anything starts (nothing
    for an uncharged caller); ``seen`` gets the headers that say what is left."""
    if caller.charged and caller.user_id is not None:
        key = user_key(services.settings.ratelimit_key_prefix, caller.user_id)
        headers = reserve(services.quota_counter(), SWEEPS, key)
        if seen is not None:
            seen(headers)


def give_back_call(caller: Caller, services: Services, held_s: float = 0.0) -> None:
    """The call back to the caller: their sweep could do nothing, for a reason of the
    server's (Stripe or the database failing, the account stayed busy, the server stopped)."""
    if caller.charged and caller.user_id is not None:
        key = user_key(services.settings.ratelimit_key_prefix, caller.user_id)
        give_back(services.quota_counter(), SWEEPS, key, held_s)


def did_nothing(err: BaseException) -> bool:
    """Whether a sweep that ended with ``err`` expired nothing, for a reason of the
    server's: its caller's call of the quota is given back. A cancel is its owner's doing."""
    if isinstance(err, SweepCanceled):
        return False
    return not isinstance(err, SweepAborted) or not err.result or not err.result.expired_count

"""The fake's memory behind one lock: sessions per account, idempotency records, faults and
counters, and the ``gate`` (rate limit, latency, injected errors) each request passes. The HTTP
server only speaks HTTP and calls these methods; every operation is a few dictionary look-ups,
far cheaper than the HTTP around it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from checkout_sweeper.fake_stripe.deliveries import Deliveries
from checkout_sweeper.fake_stripe.faults import Faults, StripeFault
from checkout_sweeper.fake_stripe.gate import RequestGate
from checkout_sweeper.fake_stripe.idempotency import Answer, IdempotencyStore, Slot, run_once
from checkout_sweeper.fake_stripe.ledger import Ledger, ListQuery, new_record, render
from checkout_sweeper.fake_stripe.objects import StripeObject
from checkout_sweeper.fake_stripe.platform import Platform
from checkout_sweeper.fake_stripe.policy import Policy
from checkout_sweeper.fake_stripe.variety import varied_params

NOT_OPEN = (
    'Only Checkout Sessions with a status in ["open"] can be expired. '
    "This Checkout Session has a status of `{status}`."
)


@dataclass
class Stats:
    """What the fake saw: the admin surface reports these to tests and benchmarks."""

    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    requests_by_account: Counter[str] = field(default_factory=Counter)  # "" is the platform itself
    limited_by_account: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    lost_answers: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    expire_calls: Counter[str] = field(default_factory=Counter)
    expired_by_request: Counter[str] = field(default_factory=Counter)
    races: int = 0
    lock_timeouts: int = 0
    spawned: int = 0
    lapsed: int = 0  # open sessions that reached their expires_at (expired by nobody's request)
    senders: dict[str, list[float]] = field(default_factory=dict)  # key tail: [first, last]
    started_at: float = field(default_factory=time.monotonic)

    def as_dict(self) -> StripeObject:
        calls = self.expire_calls
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "rate_limited": self.rate_limited,
            "by_account": {
                account or "platform": {
                    "requests": sent,
                    "rate_limited": self.limited_by_account[account],
                }
                for account, sent in self.requests_by_account.items()
            },
            "lock_timeouts": self.lock_timeouts,
            "server_errors": self.server_errors,
            "lost_answers": self.lost_answers,
            "max_in_flight": self.max_in_flight,
            "expire_calls_sessions": len(calls),
            "expire_calls_max_per_session": max(calls.values(), default=0),
            "sessions_expired_twice": sum(1 for n in self.expired_by_request.values() if n > 1),
            "expired_by_request": len(self.expired_by_request),
            "races": self.races,
            "spawned": self.spawned,
            "lapsed": self.lapsed,
            "senders": {tail: list(times) for tail, times in self.senders.items()},
            "uptime_s": round(time.monotonic() - self.started_at, 3),
        }


class FakeStripeState:
    """All accounts, idempotency records, the rate limiter, faults and counters."""

    def __init__(
        self, seed: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock  # what the rate limits measure their windows with
        self.random = random.Random(seed)
        self.faults = Faults()
        self.stats = Stats()
        self.ledgers: dict[tuple[bool, str], Ledger] = {}
        self._idempotency = IdempotencyStore()
        self.platform = Platform()
        self.gate = RequestGate(self)
        self.policy = Policy()  # sessions' lifetime, restricted keys' missing permissions
        self.webhook_endpoints: dict[tuple[bool, str], list[StripeObject]] = {}  # oldest first
        self.deliveries = Deliveries()  # checkout.session.expired events to those endpoints

    def ledger(self, livemode: bool, account: str) -> Ledger:
        """One account's sessions, those past ``expires_at`` expired first; callers lock."""
        ledger = self.ledgers.setdefault((livemode, account), Ledger(livemode))
        for record in ledger.lapse(time.time()):
            self.stats.lapsed += 1
            self._expired(livemode, account, record)
        return ledger

    def _expired(self, livemode: bool, account: str, record: StripeObject) -> None:
        """Stripe's ``checkout.session.expired`` to the account's endpoints listening for it."""
        endpoints = self.webhook_endpoints.get((livemode, account), [])
        self.deliveries.send(endpoints, render(record), livemode)

    # sessions -------------------------------------------------------------------------------
    def create_session(
        self,
        livemode: bool,
        account: str,
        params: StripeObject | None = None,
        *,
        status: str = "open",
        created: int | None = None,
    ) -> StripeObject:
        with self.lock:
            record = new_record(livemode, params or {}, status, created, self.policy.lifetime_s)
            self.platform.adopt(account)
            self.ledger(livemode, account).add(record)
            return render(record)

    def seed(
        self,
        *,
        open_: int = 0,
        complete: int = 0,
        expired: int = 0,
        livemode: bool = False,
        account: str = "",
        varied: bool = False,
        recovery: int = 0,
    ) -> None:
        """Add sessions created over the last day (``Policy.seed_span_s``), statuses shuffled
        together; ``varied`` gives them customers, payment links and metadata (``variety``);
        ``recovery`` open ones have ``after_expiration.recovery.enabled``."""
        statuses = ["open"] * open_ + ["complete"] * complete + ["expired"] * expired
        self.random.shuffle(statuses)
        now = int(time.time())
        lifetime, span = self.policy.lifetime_s, self.policy.seed_span_s
        with self.lock:
            self.platform.adopt(account)
            ledger = self.ledger(livemode, account)
            for i, status in enumerate(statuses):
                created = now - (len(statuses) - i) * span // max(len(statuses), 1)
                params = varied_params(self.random, i) if varied else {}
                if status == "open" and recovery > 0:
                    recovery -= 1
                    params = {**params, "after_expiration": {"recovery": {"enabled": True}}}
                ledger.add(new_record(livemode, params, status, created, lifetime))

    def connect_accounts(self, count: int, *, open_: int = 0, varied: bool = False) -> list[str]:
        """Connect ``count`` accounts to the platform, each with ``open_`` sessions of its own."""
        with self.lock:
            made = self.platform.connect(count)
        for account in made:
            self.seed(open_=open_, account=account, varied=varied)
        return made

    def list_sessions(
        self, livemode: bool, account: str, query: ListQuery
    ) -> tuple[list[StripeObject], bool]:
        with self.lock:
            found, has_more = self.ledger(livemode, account).select(query)
            return [render(r) for r in found], has_more

    def retrieve(self, livemode: bool, account: str, session_id: str) -> StripeObject:
        with self.lock:
            return render(self.ledger(livemode, account).get(session_id))

    def pay(self, livemode: bool, account: str, session_id: str) -> None:
        """A customer completes the session (what tests use to make a cursor go stale)."""
        with self.lock:
            record = self.ledger(livemode, account).get(session_id)
            record.update(status="complete", payment_status="paid", url=None)

    def expire(self, livemode: bool, account: str, session_id: str) -> StripeObject:
        """Open becomes expired; anything else is Stripe's 400; a race may pay it first."""
        with self.lock:
            ledger = self.ledger(livemode, account)
            self.stats.expire_calls[session_id] += 1
            record = ledger.get(session_id)
            if record["status"] == "open" and self.random.random() < self.faults.race_rate:
                record.update(status="complete", payment_status="paid", url=None)
                self.stats.races += 1
            _spawn(self, ledger, livemode)
            if record["status"] != "open":
                raise StripeFault(400, NOT_OPEN.format(status=record["status"]))
            record.update(status="expired", url=None, expires_at=int(time.time()))
            self.stats.expired_by_request[session_id] += 1
            self._expired(livemode, account, record)
            return render(record)

    def idempotent(
        self, slot: Slot, fingerprint: str, execute: Callable[[], Answer]
    ) -> tuple[Answer, bool]:
        """Run ``execute`` once per (mode, account, key); replays say True."""
        return run_once(self._idempotency, self.lock, slot, fingerprint, execute)

    def idempotency_keys(self) -> set[str]:
        with self.lock:
            return self._idempotency.keys()

    def snapshot(self) -> StripeObject:
        with self.lock:
            return _snapshot(self)

    def expire_calls(self) -> dict[str, int]:
        with self.lock:
            return dict(self.stats.expire_calls)

    def reset_counters(self) -> None:
        with self.lock:
            self.stats = Stats()
            self.gate.reset_limits()

    def wipe(self) -> None:
        """Forget every session and idempotency record as well as the counters."""
        with self.lock:
            self.ledgers.clear()
            self.webhook_endpoints.clear()
            self._idempotency.clear()
            self.platform = Platform()
        self.reset_counters()


def _spawn(state: FakeStripeState, ledger: Ledger, livemode: bool) -> None:
    """New open sessions as customers arrive (``spawn_rate`` per expire call)."""
    rate = state.faults.spawn_rate
    count = int(rate) + (1 if state.random.random() < rate - int(rate) else 0)
    for _ in range(count):
        ledger.add(new_record(livemode, {}, "open", None, state.policy.lifetime_s))
        state.stats.spawned += 1


def _snapshot(state: FakeStripeState) -> StripeObject:
    """What ``/_admin/stats`` answers; the caller holds the lock."""
    counts = {key: state.ledger(*key).count("open") for key in list(state.ledgers)}
    open_left = {
        f"{'live' if live else 'test'}:{account or 'platform'}": count
        for (live, account), count in counts.items()
    }
    return {
        **state.stats.as_dict(),
        "open_sessions": open_left,
        "open_total": sum(open_left.values()),
        "faults": asdict(state.faults),
        "webhook_deliveries": asdict(state.deliveries.stats),
    }

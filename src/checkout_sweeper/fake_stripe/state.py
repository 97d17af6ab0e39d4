"""The fake's memory: Checkout Sessions per account, idempotency records, faults and counters.

Sessions are kept as small records and rendered into Stripe's full object shape only when
answered, so that tens of thousands of sessions cost little memory. One lock guards it all:
every operation is a few dictionary look-ups, far cheaper than the HTTP around it.
"""

from __future__ import annotations

import bisect
import json
import random
import secrets
import string
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any

STATUSES = ("open", "complete", "expired")
LIST_FILTERS = ("customer", "payment_intent", "payment_link", "subscription")
_ID_ALPHABET = string.ascii_letters + string.digits
_TEMPLATE: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("checkout_session.json").read_text()
)


class StripeFault(Exception):
    """An error answer in Stripe's shape: status, error body and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.headers = headers or {}


def resource_missing(session_id: str, param: str = "session") -> StripeFault:
    return StripeFault(
        404,
        f"No such checkout.session: '{session_id}'",
        code="resource_missing",
        param=param,
    )


@dataclass
class Faults:
    """Misbehaviour the fake adds on purpose; every field can change while it runs."""

    rps: float = 0.0  # accepted requests per second per account; 0 means unlimited
    latency_ms: float = 0.0  # base latency of every answer
    jitter_ms: float = 0.0  # plus a uniform random extra up to this
    fail_rate: float = 0.0  # share of requests answered 500 with Stripe-Should-Retry: true
    expire_fail_rate: float = 0.0  # extra share of expires alone answered 500
    lost_rate: float = 0.0  # share of POSTs carried out whose answer is lost (a 500 instead)
    race_rate: float = 0.0  # share of expires that find the session just paid (complete)
    spawn_rate: float = 0.0  # new open sessions created per expire call (customers arriving)

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        for name, value in values.items():
            number = float(value)
            if number < 0 or (name.endswith("_rate") and name != "spawn_rate" and number > 1):
                raise ValueError(f"{name} out of range: {value}")
            setattr(self, name, number)


@dataclass
class Stats:
    """What the fake saw: the admin surface reports these to tests and benchmarks."""

    requests: Counter = field(default_factory=Counter)
    rate_limited: int = 0
    server_errors: int = 0
    lost_answers: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    expire_calls: Counter = field(default_factory=Counter)
    expired_by_request: Counter = field(default_factory=Counter)
    races: int = 0
    spawned: int = 0
    started_at: float = field(default_factory=time.monotonic)


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(58))


class Ledger:
    """Sessions of one account (one mode, one Stripe-Account), kept in creation order."""

    def __init__(self, livemode: bool) -> None:
        self.livemode = livemode
        self.keys: list[tuple[int, int]] = []  # (created, seq) ascending
        self.ids: list[str] = []  # parallel to keys
        self.records: dict[str, dict[str, Any]] = {}
        self.seq = 0

    def add(self, record: dict[str, Any]) -> None:
        self.seq += 1
        key = (record["created"], self.seq)
        record["_key"] = key
        index = bisect.bisect(self.keys, key)
        self.keys.insert(index, key)
        self.ids.insert(index, record["id"])
        self.records[record["id"]] = record

    def position(self, session_id: str) -> int:
        return bisect.bisect_left(self.keys, self.records[session_id]["_key"])

    def count(self, status: str) -> int:
        return sum(1 for r in self.records.values() if r["status"] == status)


def render(record: dict[str, Any]) -> dict[str, Any]:
    """The full ``checkout.session`` object for a stored record."""
    obj = {**_TEMPLATE, **{k: v for k, v in record.items() if not k.startswith("_")}}
    return obj


class FakeStripeState:
    """All accounts, idempotency records, faults and counters, behind one lock."""

    def __init__(self, seed: int | None = None) -> None:
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.faults = Faults()
        self.stats = Stats()
        self.ledgers: dict[tuple[bool, str], Ledger] = {}
        self.idempotency: dict[tuple[bool, str, str], dict[str, Any]] = {}
        self._windows: dict[tuple[bool, str], deque[float]] = {}

    # accounts -------------------------------------------------------------------------------
    def ledger(self, livemode: bool, account: str) -> Ledger:
        key = (livemode, account)
        if key not in self.ledgers:
            self.ledgers[key] = Ledger(livemode)
        return self.ledgers[key]

    # sessions -------------------------------------------------------------------------------
    def create_session(
        self,
        livemode: bool,
        account: str,
        params: dict[str, Any] | None = None,
        *,
        status: str = "open",
        created: int | None = None,
    ) -> dict[str, Any]:
        """Store a new session; callers hold the lock."""
        params = params or {}
        now = int(time.time())
        session_id = _new_id("cs_live_" if livemode else "cs_test_")
        created = created if created is not None else now
        record: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "created": created,
            "expires_at": created + 24 * 3600,
            "livemode": livemode,
            "status": status,
            "payment_status": "paid" if status == "complete" else "unpaid",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}" if status == "open" else None,
            "mode": params.get("mode", "payment"),
            "metadata": params.get("metadata") or {},
            "customer": params.get("customer"),
            "customer_email": params.get("customer_email"),
            "client_reference_id": params.get("client_reference_id"),
            "success_url": params.get("success_url", _TEMPLATE["success_url"]),
            "cancel_url": params.get("cancel_url", _TEMPLATE["cancel_url"]),
            "payment_intent": params.get("payment_intent") or _new_id("pi_")[:27],
            "payment_link": params.get("payment_link"),
            "subscription": params.get("subscription"),
        }
        self.ledger(livemode, account).add(record)
        return record

    def seed(
        self,
        *,
        open_: int = 0,
        complete: int = 0,
        expired: int = 0,
        livemode: bool = False,
        account: str = "",
    ) -> None:
        """Add sessions created over the last day, statuses shuffled together."""
        statuses = ["open"] * open_ + ["complete"] * complete + ["expired"] * expired
        self.random.shuffle(statuses)
        now = int(time.time())
        with self.lock:
            for i, status in enumerate(statuses):
                created = now - (len(statuses) - i) * 86400 // max(len(statuses), 1) - 1
                self.create_session(livemode, account, status=status, created=created)

    def list_sessions(
        self,
        livemode: bool,
        account: str,
        *,
        limit: int,
        filters: dict[str, Any],
        created: dict[str, int],
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, with Stripe's cursor rules; the cursor must still match the filter."""
        with self.lock:
            ledger = self.ledger(livemode, account)

            def matches(record: dict[str, Any]) -> bool:
                for name, wanted in filters.items():
                    if record.get(name) != wanted:
                        return False
                for op, bound in created.items():
                    value = record["created"]
                    if not {
                        "eq": value == bound,
                        "gt": value > bound,
                        "gte": value >= bound,
                        "lt": value < bound,
                        "lte": value <= bound,
                    }[op]:
                        return False
                return True

            cursor = starting_after or ending_before
            if cursor is not None:
                record = ledger.records.get(cursor)
                param = "starting_after" if starting_after else "ending_before"
                if record is None or not matches(record):
                    raise resource_missing(cursor, param)
                pos = ledger.position(cursor)
            found: list[dict[str, Any]] = []
            if ending_before is not None:
                indexes = range(pos + 1, len(ledger.ids))  # newer ones, nearest first
            else:
                start = pos - 1 if starting_after is not None else len(ledger.ids) - 1
                indexes = range(start, -1, -1)
            has_more = False
            for i in indexes:
                record = ledger.records[ledger.ids[i]]
                if matches(record):
                    if len(found) == limit:
                        has_more = True
                        break
                    found.append(record)
            if ending_before is not None:
                found.reverse()
            return [render(r) for r in found], has_more

    def retrieve(self, livemode: bool, account: str, session_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.ledger(livemode, account).records.get(session_id)
            if record is None:
                raise resource_missing(session_id)
            return render(record)

    def expire(self, livemode: bool, account: str, session_id: str) -> dict[str, Any]:
        """Open becomes expired; anything else is Stripe's 400; a race may pay it first."""
        with self.lock:
            ledger = self.ledger(livemode, account)
            self.stats.expire_calls[session_id] += 1
            record = ledger.records.get(session_id)
            if record is None:
                raise resource_missing(session_id)
            if record["status"] == "open" and self.random.random() < self.faults.race_rate:
                record.update(status="complete", payment_status="paid", url=None)
                self.stats.races += 1
            self._maybe_spawn(ledger, livemode, account)
            if record["status"] != "open":
                raise StripeFault(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. '
                    f"This Checkout Session has a status of `{record['status']}`.",
                )
            record.update(status="expired", url=None, expires_at=int(time.time()))
            self.stats.expired_by_request[session_id] += 1
            return render(record)

    def _maybe_spawn(self, ledger: Ledger, livemode: bool, account: str) -> None:
        rate = self.faults.spawn_rate
        whole, fraction = int(rate), rate - int(rate)
        count = whole + (1 if self.random.random() < fraction else 0)
        for _ in range(count):
            self.create_session(livemode, account)
            self.stats.spawned += 1

    # faults and counters ----------------------------------------------------------------------
    def admit(self, livemode: bool, account: str, now: float) -> bool:
        """Sliding one-second window per account: False means answer 429."""
        rps = self.faults.rps
        if rps <= 0:
            return True
        with self.lock:
            window = self._windows.setdefault((livemode, account), deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= rps:
                self.stats.rate_limited += 1
                return False
            window.append(now)
            return True

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            calls = self.stats.expire_calls
            open_left = {
                f"{'live' if live else 'test'}:{account or 'platform'}": ledger.count("open")
                for (live, account), ledger in self.ledgers.items()
            }
            return {
                "requests": dict(self.stats.requests),
                "requests_total": sum(self.stats.requests.values()),
                "rate_limited": self.stats.rate_limited,
                "server_errors": self.stats.server_errors,
                "lost_answers": self.stats.lost_answers,
                "max_in_flight": self.stats.max_in_flight,
                "expire_calls_sessions": len(calls),
                "expire_calls_max_per_session": max(calls.values(), default=0),
                "sessions_expired_twice": sum(
                    1 for n in self.stats.expired_by_request.values() if n > 1
                ),
                "races": self.stats.races,
                "spawned": self.stats.spawned,
                "open_sessions": open_left,
                "open_total": sum(open_left.values()),
                "faults": asdict(self.faults),
                "uptime_s": round(time.monotonic() - self.stats.started_at, 3),
            }

    def expire_calls(self) -> dict[str, int]:
        with self.lock:
            return dict(self.stats.expire_calls)

    def reset_counters(self) -> None:
        with self.lock:
            self.stats = Stats()
            self._windows.clear()

    def wipe(self) -> None:
        """Forget every session and idempotency record as well as the counters."""
        with self.lock:
            self.ledgers.clear()
            self.idempotency.clear()
        self.reset_counters()

"""Sessions of one account, kept as small records in creation order.

Records are rendered into Stripe's full ``checkout.session`` shape only when answered, so tens
of thousands of sessions cost little memory. Listing follows Stripe's rules: newest first, and a
cursor that no longer matches the filter is a 404 ``resource_missing``.
"""

from __future__ import annotations

import bisect
import heapq
import json
import secrets
import string
import time
from dataclasses import dataclass, field
from importlib import resources

from checkout_sweeper.fake_stripe.faults import resource_missing
from checkout_sweeper.fake_stripe.objects import StripeObject

STATUSES = ("open", "complete", "expired")
LIST_FILTERS = ("customer", "payment_intent", "payment_link", "subscription")
_ID_ALPHABET = string.ascii_letters + string.digits
TEMPLATE: StripeObject = json.loads(
    resources.files(__package__).joinpath("checkout_session.json").read_text()
)
_COMPARE = {
    "eq": lambda value, bound: value == bound,
    "gt": lambda value, bound: value > bound,
    "gte": lambda value, bound: value >= bound,
    "lt": lambda value, bound: value < bound,
    "lte": lambda value, bound: value <= bound,
}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(58))


def render(record: StripeObject) -> StripeObject:
    """The full ``checkout.session`` object for a stored record."""
    return {**TEMPLATE, **{k: v for k, v in record.items() if not k.startswith("_")}}


LIFETIME_S = 24 * 3600  # Stripe's longest (and default) session lifetime


def new_record(
    livemode: bool,
    params: StripeObject,
    status: str,
    created: int | None,
    lifetime_s: int = LIFETIME_S,
) -> StripeObject:
    """A session record from create parameters, shaped like Stripe's fixture; it expires by
    itself ``lifetime_s`` after ``created`` (or at the ``expires_at`` asked for)."""
    session_id = new_id("cs_live_" if livemode else "cs_test_")
    created = created if created is not None else int(time.time())
    return {
        "id": session_id,
        "object": "checkout.session",
        "created": created,
        "expires_at": int(params.get("expires_at") or created + lifetime_s),
        "livemode": livemode,
        "status": status,
        "payment_status": "paid" if status == "complete" else "unpaid",
        "url": f"https://checkout.stripe.com/c/pay/{session_id}" if status == "open" else None,
        "mode": params.get("mode", "payment"),
        "metadata": params.get("metadata") or {},
        "customer": params.get("customer"),
        "customer_email": params.get("customer_email"),
        "client_reference_id": params.get("client_reference_id"),
        "success_url": params.get("success_url", TEMPLATE["success_url"]),
        "cancel_url": params.get("cancel_url", TEMPLATE["cancel_url"]),
        "payment_intent": params.get("payment_intent") or new_id("pi_")[:27],
        "payment_link": params.get("payment_link"),
        "subscription": params.get("subscription"),
        "after_expiration": _after_expiration(params.get("after_expiration")),
    }


def _after_expiration(asked: object) -> StripeObject | None:
    """``after_expiration`` as Stripe shows it: recovery enabled or not (form values are text)."""
    recovery = asked.get("recovery") if isinstance(asked, dict) else None
    if not isinstance(recovery, dict):
        return None
    enabled = recovery.get("enabled") in (True, "true")
    return {
        "recovery": {
            "allow_promotion_codes": False,
            "enabled": enabled,
            "expires_at": None,
            "url": None,
        }
    }


@dataclass(frozen=True)
class ListQuery:
    """A validated ``GET /v1/checkout/sessions``."""

    limit: int = 10
    filters: StripeObject = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    starting_after: str | None = None
    ending_before: str | None = None

    def matches(self, record: StripeObject) -> bool:
        if any(record.get(name) != wanted for name, wanted in self.filters.items()):
            return False
        return all(_COMPARE[op](record["created"], bound) for op, bound in self.created.items())


class Ledger:
    """Sessions of one account (one mode, one Stripe-Account); callers hold the state's lock."""

    def __init__(self, livemode: bool) -> None:
        self.livemode = livemode
        self.keys: list[tuple[int, int]] = []  # (created, seq) ascending
        self.ids: list[str] = []  # parallel to keys
        self.records: dict[str, StripeObject] = {}
        self.seq = 0
        self._deadlines: list[tuple[int, str]] = []  # (expires_at, id) of open sessions

    def lapse(self, now: float) -> list[StripeObject]:
        """Expire, as Stripe does by itself, every open session whose ``expires_at`` has come;
        return them."""
        lapsed = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, session_id = heapq.heappop(self._deadlines)
            record = self.records[session_id]
            if record["status"] == "open" and record["expires_at"] <= now:
                record.update(status="expired", url=None)
                lapsed.append(record)
        return lapsed

    def add(self, record: StripeObject) -> None:
        self.seq += 1
        key = (record["created"], self.seq)
        record["_key"] = key
        index = bisect.bisect(self.keys, key)
        self.keys.insert(index, key)
        self.ids.insert(index, record["id"])
        self.records[record["id"]] = record
        if record["status"] == "open":
            heapq.heappush(self._deadlines, (record["expires_at"], record["id"]))

    def get(self, session_id: str) -> StripeObject:
        record = self.records.get(session_id)
        if record is None:
            raise resource_missing(session_id)
        return record

    def count(self, status: str) -> int:
        return sum(1 for r in self.records.values() if r["status"] == status)

    def select(self, query: ListQuery) -> tuple[list[StripeObject], bool]:
        """Newest first from the cursor; the cursor itself must still match the filter."""
        found: list[StripeObject] = []
        has_more = False
        for index in self._indexes(query):
            record = self.records[self.ids[index]]
            if query.matches(record):
                if len(found) == query.limit:
                    has_more = True
                    break
                found.append(record)
        if query.ending_before is not None:
            found.reverse()
        return found, has_more

    def _indexes(self, query: ListQuery) -> range:
        cursor = query.starting_after or query.ending_before
        if cursor is None:
            return range(len(self.ids) - 1, -1, -1)
        record = self.records.get(cursor)
        if record is None or not query.matches(record):
            param = "starting_after" if query.starting_after else "ending_before"
            raise resource_missing(cursor, param)
        position = bisect.bisect_left(self.keys, record["_key"])
        if query.ending_before is not None:
            return range(position + 1, len(self.ids))  # newer ones, nearest first
        return range(position - 1, -1, -1)

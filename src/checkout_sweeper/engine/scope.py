"""Which open sessions a sweep may expire: all of them, or a scope.

Stripe's list filters by ``created``, ``customer`` and ``payment_link``, so those are asked of
Stripe (fewer pages to read); metadata is not a list filter, so it is checked on each session
as it is listed. ``older_than`` becomes a fixed ``created_before`` when the sweep starts, so a
long sweep does not chase a moving cutoff. ``limit`` caps how many sessions are sent an
expire, in the list's order: newest first.

Each field is declared once, in ``SCOPE_FIELDS``: its parser, its command-line option, its
JSON Schema, its meaning and how it is shown, as plain data (the engine knows no click or
Flask). The command-line options, the OpenAPI request bodies, the plan ``sweep`` shows and the
README's table are built from it. One parser serves the command line, the API body and stored
schedules, so a scope means the same wherever it is written, and a bad one is refused with every
bad field named.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from checkout_sweeper.engine.durations import parse_duration
from checkout_sweeper.engine.gateway import ListFilters
from checkout_sweeper.errors import ScopeInvalid
from checkout_sweeper.vocabulary import JsonObject

METADATA_KEY_MAX = 40  # Stripe's limits on metadata keys and values
METADATA_VALUE_MAX = 500
CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9_]{1,250}")
PAYMENT_LINK_ID = re.compile(r"plink_[A-Za-z0-9_]{1,250}")
AGE = re.compile(r"[0-9]{0,8}[1-9][0-9]{0,8}[smhdw]")  # as documented: more than 0, lower case
# Bounds that keep every value a sane number for Stripe and the database. Stripe keeps a
# session open for 24 hours at most (``expires_at`` is 30 minutes to 24 hours after
# ``created``), so a cutoff further back than that matches nothing and is refused.
SESSION_LIFETIME_MAX_S = 86400
OLDER_THAN_MAX_S = SESSION_LIFETIME_MAX_S
LIFETIME = "sessions live at most 24 hours (Stripe expires them by then)"
CREATED_BEFORE_MIN = 946_684_800  # 2000-01-01T00:00:00Z, before any Checkout Session
CREATED_BEFORE_MAX = 4_102_444_800  # 2100-01-01T00:00:00Z
LIMIT_MAX = 1_000_000  # sessions one sweep may expire (hours at Stripe's pace)


class Form(StrEnum):
    """How a field's value is written, so that each door reads and shows it alike (the command
    line parses a moment or ``KEY=VALUE`` pairs; the plan shows an epoch as ISO 8601)."""

    DURATION = "duration"  # 2h
    MOMENT = "moment"  # epoch seconds; ISO 8601 too on the command line
    STRIPE_ID = "stripe_id"  # cus_..., plink_...
    PAIRS = "pairs"  # string keys and values; KEY=VALUE, repeated, on the command line
    COUNT = "count"  # a whole number


@dataclass(frozen=True, eq=False)
class ScopeField:
    """One field of a scope with everything each door needs of it, so a field is added in one
    place. The option is the name in kebab case (``--older-than``)."""

    name: str
    form: Form
    metavar: str  # the option's value on the command line
    schema: Mapping[str, Any]  # JSON Schema of a value that is set (the API adds null)
    meaning: str  # one line: the API's description, and the option's help unless option_help
    parse: Callable[[Any], Any]  # the written value to the Scope's; ValueError says what is bad
    shown: str  # in the plan's words, after "open Checkout Sessions": "of customer {}"
    applied: str  # how a sweep applies it (the README's table, Markdown)
    option_help: str | None = None  # the option's help, where the command line writes it otherwise
    hidden_by: str | None = None  # not shown when this field is set (it fixes this one)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def help(self) -> str:
        return self.option_help or self.meaning

    def to_json(self, value: Any) -> Any:
        """A Scope's value as JSON writes it (pairs as an object)."""
        return dict(value) if self.form is Form.PAIRS else value


def _older_than(value: Any) -> str:
    expected = f"a duration from 1s to 24h such as 90s, 30m, 2h or 1d, got {repr(value)[:40]}"
    if not isinstance(value, str) or not AGE.fullmatch(value):
        raise ValueError(f"expected {expected}")
    if parse_duration(value) > OLDER_THAN_MAX_S:
        raise ValueError(
            f"{LIFETIME}, so an older_than past 24h matches no open session: expected {expected}"
        )
    return value


def _whole(value: Any) -> int | None:
    """A JSON integer (``551`` or ``551.0``), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _created_before(value: Any) -> int:
    whole = _whole(value)
    if whole is None or not CREATED_BEFORE_MIN <= whole <= CREATED_BEFORE_MAX:
        raise ValueError(
            f"expected a Unix time in seconds from {CREATED_BEFORE_MIN} (2000-01-01) to "
            f"{CREATED_BEFORE_MAX} (2100-01-01)"
        )
    return whole


def _stripe_id(pattern: re.Pattern[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            prefix = pattern.pattern.split("[")[0]
            raise ValueError(f"expected a Stripe id starting with {prefix}")
        return value

    return check


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ValueError('expected an object of string keys and values, such as {"k": "v"}')
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > METADATA_KEY_MAX:
            raise ValueError(f"keys are 1 to {METADATA_KEY_MAX} characters")
        if not isinstance(item, str) or len(item) > METADATA_VALUE_MAX:
            raise ValueError(f"values are strings of at most {METADATA_VALUE_MAX} characters")
    return tuple(sorted(value.items()))


def _session_cap(value: Any) -> int:
    whole = _whole(value)
    if whole is None or not 1 <= whole <= LIMIT_MAX:
        raise ValueError(f"expected a whole number of sessions from 1 to {LIMIT_MAX:,}")
    return whole


SCOPE_FIELDS = (
    ScopeField(
        "older_than",
        Form.DURATION,
        metavar="DURATION",
        schema={"type": "string", "pattern": f"^{AGE.pattern}$"},
        meaning="Only sessions older than this when the sweep starts: 90s, 30m, 2h, up to 24h "
        "(sessions live at most 24 hours).",
        parse=_older_than,
        shown="older than {}",
        applied="fixed to a cutoff when the sweep starts (a resumed run keeps it), "
        "then Stripe's `created[lt]`",
    ),
    ScopeField(
        "created_before",
        Form.MOMENT,
        metavar="ISO|EPOCH",
        schema={"type": "integer", "minimum": CREATED_BEFORE_MIN, "maximum": CREATED_BEFORE_MAX},
        meaning="Only sessions created before this Unix time (seconds), at most 24 hours ago "
        "when asked (sessions live at most 24 hours).",
        option_help="Only sessions created before this moment (ISO 8601 or epoch seconds), at "
        "most 24 hours ago.",
        parse=_created_before,
        shown="created before {}",
        hidden_by="older_than",
        applied="Stripe's `created[lt]` (with `older_than`, the earlier cutoff wins)",
    ),
    ScopeField(
        "customer",
        Form.STRIPE_ID,
        metavar="cus_...",
        schema={"type": "string", "pattern": f"^{CUSTOMER_ID.pattern}$"},
        meaning="Only this customer's sessions.",
        parse=_stripe_id(CUSTOMER_ID),
        shown="of customer {}",
        applied="Stripe's list filter `customer` (expiring an abandoned subscription checkout "
        "voids its incomplete subscription)",
    ),
    ScopeField(
        "payment_link",
        Form.STRIPE_ID,
        metavar="plink_...",
        schema={"type": "string", "pattern": f"^{PAYMENT_LINK_ID.pattern}$"},
        meaning="Only sessions created through this payment link.",
        parse=_stripe_id(PAYMENT_LINK_ID),
        shown="from payment link {}",
        applied="Stripe's list filter `payment_link`",
    ),
    ScopeField(
        "metadata",
        Form.PAIRS,
        metavar="KEY=VALUE",
        schema={
            "type": "object",
            "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_MAX},
            "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_MAX},
        },
        meaning="Only sessions whose metadata has every one of these keys set to these values.",
        option_help="Only sessions whose metadata has KEY set to VALUE; repeat to require several.",
        parse=_metadata,
        shown="with metadata {}",
        applied="Stripe's list does not filter on metadata: checked on each listed session",
    ),
    ScopeField(
        "limit",
        Form.COUNT,
        metavar="N",
        schema={"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
        meaning="Expire at most this many, newest first (the order of Stripe's list).",
        option_help="Expire at most N sessions, newest first (the order of Stripe's list).",
        parse=_session_cap,
        shown="(at most {}, newest first)",
        applied="in the order of Stripe's list, so a sweep expires while it lists instead of "
        "reading the whole scope first",
    ),
)
FIELDS = tuple(field.name for field in SCOPE_FIELDS)
_BY_NAME = {field.name: field for field in SCOPE_FIELDS}


@dataclass(frozen=True)
class Scope:
    """A sweep's scope; the default is every open session of the account. Its fields are
    ``SCOPE_FIELDS``, in that order."""

    older_than: str | None = None  # as written (``2h``), kept to show
    created_before: int | None = None  # epoch seconds, strictly before
    customer: str | None = None
    payment_link: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    limit: int | None = None

    @property
    def everything(self) -> bool:
        return dataclasses.replace(self, limit=None) == EVERYTHING

    def resolved(self, now: float) -> Scope:
        """``older_than`` turned into a cutoff at ``now``: the earlier of it and
        ``created_before``, so resolving again later keeps the first cutoff."""
        if self.older_than is None:
            return self
        cutoff = int(now) - parse_duration(self.older_than)
        if self.created_before is not None:
            cutoff = min(cutoff, self.created_before)
        return dataclasses.replace(self, created_before=cutoff)

    def list_filters(self) -> ListFilters:
        return ListFilters(self.created_before, self.customer, self.payment_link)

    def matches(self, session: Mapping[str, Any]) -> bool:
        """Whether a listed session is in scope (``limit`` aside): every field, so a listing
        without Stripe-side filters can be sorted too."""
        if self.created_before is not None and session.get("created", 0) >= self.created_before:
            return False
        if self.customer is not None and session.get("customer") != self.customer:
            return False
        if self.payment_link is not None and session.get("payment_link") != self.payment_link:
            return False
        metadata = session.get("metadata") or {}
        return all(metadata.get(key) == value for key, value in self.metadata)

    def shown(self) -> JsonObject:
        """The scope as a sweep's answer shows it: empty for every open session."""
        return {} if self == EVERYTHING else self.as_dict()

    def stored(self) -> str | None:
        """The scope as a run row keeps it (JSON; null for every open session)."""
        return json.dumps(self.as_dict()) if self != EVERYTHING else None

    def as_dict(self) -> JsonObject:
        """The scope as the API shows it (fields not set are null, metadata an object)."""
        return {field.name: field.to_json(getattr(self, field.name)) for field in SCOPE_FIELDS}


EVERYTHING = Scope()


def parse_scope(raw: Mapping[str, Any], *, now: float | None = None) -> Scope:
    """A scope from its written form (API body, stored schedule, command-line options);
    ``ScopeInvalid`` names every bad or unknown field. The doors pass ``now``: a
    ``created_before`` more than 24 hours before it can match no open session and is refused
    there; a stored schedule or queued run, read back later, is parsed without it (its cutoff
    was checked when it was written, and a slot that matches nothing just expires nothing)."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}  # checked, by field: Scope(**values)
    for name, value in raw.items():
        if value is None:
            continue
        field = _BY_NAME.get(name)
        if field is None:
            problems[name] = "unknown field; a scope takes " + ", ".join(FIELDS)
            continue
        try:
            values[name] = field.parse(value)
        except ValueError as err:
            problems[name] = str(err)
    cutoff = values.get("created_before")
    if now is not None and cutoff is not None and cutoff < now - SESSION_LIFETIME_MAX_S:
        problems["created_before"] = (
            f"{LIFETIME}, so a created_before more than 24 hours ago ({cutoff}) matches no "
            "open session"
        )
    if problems:
        raise ScopeInvalid(problems)
    return Scope(**values)

"""Which open sessions a sweep may expire: all of them, or a scope.

Stripe's list filters by ``created``, ``customer`` and ``payment_link``, so those are asked of
Stripe (fewer pages to read); metadata is not a list filter, so it is checked on each session
as it is listed. ``older_than`` becomes a fixed ``created_before`` when the sweep starts, so a
long sweep does not chase a moving cutoff. ``limit`` caps how many sessions are sent an
expire, in the list's order: newest first.

One parser serves the command line, the API body and stored schedules, so a scope means the
same wherever it is written, and a bad one is refused with every bad field named.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from checkout_sweeper.engine.durations import EXAMPLES, parse_duration
from checkout_sweeper.engine.gateway import ListFilters
from checkout_sweeper.errors import ScopeInvalid
from checkout_sweeper.vocabulary import JsonObject

METADATA_KEY_MAX = 40  # Stripe's limits on metadata keys and values
METADATA_VALUE_MAX = 500
ID_PATTERNS = {
    "customer": re.compile(r"cus_[A-Za-z0-9_]{1,250}"),
    "payment_link": re.compile(r"plink_[A-Za-z0-9_]{1,250}"),
}
AGE = re.compile(r"[0-9]{0,8}[1-9][0-9]{0,8}[smhdw]")  # as documented: more than 0, lower case
FIELDS = ("older_than", "created_before", "customer", "payment_link", "metadata", "limit")


@dataclass(frozen=True)
class Scope:
    """A sweep's scope; the default is every open session of the account."""

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
        """The scope as the API shows it (fields not set are null)."""
        return {
            "older_than": self.older_than,
            "created_before": self.created_before,
            "customer": self.customer,
            "payment_link": self.payment_link,
            "metadata": dict(self.metadata),
            "limit": self.limit,
        }


EVERYTHING = Scope()


def parse_scope(raw: Mapping[str, Any]) -> Scope:
    """A scope from its written form (API body, stored schedule, command-line options);
    ``ScopeInvalid`` names every bad or unknown field."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}  # checked, by field: Scope(**values)
    for name, value in raw.items():
        if value is None:
            continue
        check = _CHECKS.get(name)
        if check is None:
            problems[name] = "unknown field; a scope takes " + ", ".join(FIELDS)
            continue
        try:
            values[name] = check(value)
        except ValueError as err:
            problems[name] = str(err)
    if problems:
        raise ScopeInvalid(problems)
    return Scope(**values)


def _older_than(value: object) -> str:
    if not isinstance(value, str) or not AGE.fullmatch(value):
        raise ValueError(f"expected a duration longer than 0s such as {EXAMPLES}, got {value!r}")
    return value


def _whole(value: object) -> int | None:
    """A JSON integer (``551`` or ``551.0``), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _created_before(value: object) -> int:
    whole = _whole(value)
    if whole is None or whole <= 0:
        raise ValueError("expected a positive Unix time in seconds")
    return whole


def _identifier(name: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or not ID_PATTERNS[name].fullmatch(value):
            prefix = ID_PATTERNS[name].pattern.split("[")[0]
            raise ValueError(f"expected a Stripe id starting with {prefix}")
        return value

    return check


def _metadata(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ValueError('expected an object of string keys and values, such as {"k": "v"}')
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > METADATA_KEY_MAX:
            raise ValueError(f"keys are 1 to {METADATA_KEY_MAX} characters")
        if not isinstance(item, str) or len(item) > METADATA_VALUE_MAX:
            raise ValueError(f"values are strings of at most {METADATA_VALUE_MAX} characters")
    return tuple(sorted(value.items()))


def _session_cap(value: object) -> int:
    whole = _whole(value)
    if whole is None or whole < 1:
        raise ValueError("expected a whole number of sessions, 1 or more")
    return whole


_CHECKS = {
    "older_than": _older_than,
    "created_before": _created_before,
    "customer": _identifier("customer"),
    "payment_link": _identifier("payment_link"),
    "metadata": _metadata,
    "limit": _session_cap,
}

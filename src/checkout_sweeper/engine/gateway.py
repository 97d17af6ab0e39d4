"""What the sweep engine needs from Stripe, as plain Python: a page type and a protocol.

``stripe_api.adapter.StripeGateway`` implements it over the official SDK; tests implement it
in memory. Errors come back as the ``StripeProblem`` branch of ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from checkout_sweeper.vocabulary import JsonObject


@dataclass(frozen=True)
class SessionPage:
    """One page of the ``status=open`` listing, newest first."""

    sessions: list[JsonObject]  # Stripe's checkout.session objects, as parsed
    has_more: bool


@dataclass(frozen=True)
class ListFilters:
    """What Stripe's list itself can filter on (``created[lt]``, ``customer``, ``payment_link``)."""

    created_before: int | None = None
    customer: str | None = None
    payment_link: str | None = None


NO_FILTERS = ListFilters()


class Gateway(Protocol):
    """Checkout Session calls for one account."""

    livemode: bool
    account: str

    def list_open(
        self, *, limit: int, starting_after: str | None, filters: ListFilters
    ) -> SessionPage: ...

    def expire(self, session_id: str, idempotency_key: str) -> None: ...

    def session_status(self, session_id: str) -> str: ...

    def webhook_endpoints(self) -> list[JsonObject]: ...

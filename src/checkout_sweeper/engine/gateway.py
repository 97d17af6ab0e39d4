"""What the sweep engine needs from Stripe, as plain Python: a page type and a protocol.

``stripe_api.adapter.StripeGateway`` implements it over the official SDK; tests implement it
in memory. Errors come back as the ``StripeProblem`` branch of ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SessionPage:
    """One page of the ``status=open`` listing, newest first."""

    sessions: list[dict[str, Any]]
    has_more: bool


class Gateway(Protocol):
    """Checkout Session calls for one account."""

    livemode: bool
    account: str

    def list_open(
        self, *, limit: int, starting_after: str | None, created_before: int | None
    ) -> SessionPage: ...

    def expire(self, session_id: str, idempotency_key: str) -> None: ...

    def session_status(self, session_id: str) -> str: ...

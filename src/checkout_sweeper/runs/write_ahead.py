"""Expires written down before they leave: the gateway a recorded sweep uses journals each
session's expire (the line flushed to the file) before its request is sent, so a process
killed with requests in flight (kill -9) leaves each of them on disk; the journal's import
makes them ``unknown`` rows, which the next sweep of the account settles from Stripe.
No session Stripe expired is without a row."""

from __future__ import annotations

import time

from checkout_sweeper.engine.gateway import Gateway, ListFilters, SessionPage
from checkout_sweeper.runs.journal import Journal
from checkout_sweeper.vocabulary import JsonObject

SENT = "sent"  # the journal line of an expire about to leave


class WriteAheadGateway:
    """``gateway``, with every expire journaled in ``journal`` before it is sent."""

    def __init__(self, gateway: Gateway, journal: Journal) -> None:
        self._gateway, self._journal = gateway, journal
        self.livemode, self.account = gateway.livemode, gateway.account

    def list_open(
        self, *, limit: int, starting_after: str | None, filters: ListFilters
    ) -> SessionPage:
        return self._gateway.list_open(limit=limit, starting_after=starting_after, filters=filters)

    def expire(self, session_id: str, idempotency_key: str) -> None:
        self._journal.append({"kind": SENT, "session_id": session_id, "at": time.time()})
        self._gateway.expire(session_id, idempotency_key)

    def session_status(self, session_id: str) -> str:
        return self._gateway.session_status(session_id)

    def webhook_endpoints(self) -> list[JsonObject]:
        return self._gateway.webhook_endpoints()

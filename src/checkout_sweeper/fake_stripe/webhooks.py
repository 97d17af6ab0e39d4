"""Webhook endpoints of each account, in Stripe's shape: ``GET /v1/webhook_endpoints``
(newest first, paginated as Stripe's lists are) and an admin way to add them."""

from __future__ import annotations

import secrets
import time

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.ledger import new_id
from checkout_sweeper.fake_stripe.objects import StripeObject

STATUSES = ("enabled", "disabled")


def new_endpoint(livemode: bool, body: StripeObject) -> StripeObject:
    """A ``webhook_endpoint`` from ``url``, ``enabled_events`` and ``status`` (``ValueError``
    says what is wrong); its ``secret`` is shown, as Stripe shows it once at creation."""
    url, events = body.get("url"), body.get("enabled_events", ["checkout.session.expired"])
    status = body.get("status", "enabled")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("url must be an http(s) URL")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValueError("enabled_events must be a non-empty list of event types")
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    return {
        "id": new_id("we_")[:27],
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": int(time.time()),
        "description": body.get("description"),
        "enabled_events": events,
        "livemode": livemode,
        "metadata": {},
        "secret": str(body.get("secret") or "whsec_" + secrets.token_hex(16)),
        "status": status,
        "url": url,
    }


def endpoint_page(
    endpoints: list[StripeObject], limit: int, starting_after: str | None
) -> StripeObject:
    """One page of an account's endpoints (``endpoints`` oldest first), newest first."""
    newest_first = list(reversed(endpoints))
    if starting_after is not None:
        ids = [endpoint["id"] for endpoint in newest_first]
        if starting_after not in ids:
            raise StripeFault(
                404, f"No such webhook endpoint: '{starting_after}'", code="resource_missing"
            )
        newest_first = newest_first[ids.index(starting_after) + 1 :]
    shown = [{k: v for k, v in e.items() if k != "secret"} for e in newest_first[:limit]]
    return {
        "object": "list",
        "data": shown,
        "has_more": len(newest_first) > limit,
        "url": "/v1/webhook_endpoints",
    }

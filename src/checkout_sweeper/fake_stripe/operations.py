"""Stripe's Checkout Sessions operations over the fake's state: parameter checks as Stripe
makes them, then one state call. Each returns the JSON body of a 200 or raises ``StripeFault``;
nothing here knows HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.ledger import LIST_FILTERS, STATUSES, ListQuery
from checkout_sweeper.fake_stripe.objects import StripeObject
from checkout_sweeper.fake_stripe.state import FakeStripeState
from checkout_sweeper.fake_stripe.webhooks import endpoint_page

CREATED_OPS = ("gt", "gte", "lt", "lte")
LIST_PARAMS = {
    "limit",
    "status",
    "created",
    "starting_after",
    "ending_before",
    "expand",
    "customer_details",
    *LIST_FILTERS,
}
CREATE_PARAMS = {
    "mode",
    "success_url",
    "cancel_url",
    "line_items",
    "metadata",
    "customer",
    "customer_email",
    "client_reference_id",
    "payment_method_types",
    "expires_at",
    "ui_mode",
    "currency",
    "expand",
    "allow_promotion_codes",
    "subscription_data",
    "payment_intent_data",
    "after_expiration",
}


@dataclass(frozen=True)
class Caller:
    """Who is asking: mode from the key, account from ``Stripe-Account``."""

    key: str
    account: str

    @property
    def livemode(self) -> bool:
        return "_live_" in self.key[:8]


def reject_unknown(params: StripeObject, allowed: set[str]) -> None:
    unknown = [name for name in params if name not in allowed]
    if unknown:
        raise StripeFault(
            400,
            f"Received unknown parameter: {unknown[0]}",
            param=unknown[0],
            code="parameter_unknown",
        )


def integer(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeFault(
            400, f"Invalid integer: {value}", param=name, code="parameter_invalid_integer"
        ) from None


def created_filter(raw: Any) -> dict[str, int]:
    """``created=N`` or ``created[gt|gte|lt|lte]=N``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return {"eq": integer("created", raw)}
    for op in raw:
        if op not in CREATED_OPS:
            reject_unknown({f"created[{op}]": None}, set())
    return {op: integer(f"created[{op}]", value) for op, value in raw.items()}


def list_query(params: StripeObject) -> ListQuery:
    reject_unknown(params, LIST_PARAMS)
    limit = integer("limit", params.get("limit", 10))
    if not 1 <= limit <= 100:
        raise StripeFault(
            400,
            "This value must be greater than or equal to 1 and less than or equal to 100 "
            f"(it currently is '{limit}').",
            param="limit",
            code="parameter_invalid_integer",
        )
    filters = {name: params[name] for name in ("status", *LIST_FILTERS) if name in params}
    if "status" in filters and filters["status"] not in STATUSES:
        raise StripeFault(
            400, f"Invalid status: must be one of {', '.join(STATUSES)}", param="status"
        )
    if params.get("starting_after") and params.get("ending_before"):
        raise StripeFault(
            400,
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    return ListQuery(
        limit=limit,
        filters=filters,
        created=created_filter(params.get("created")),
        starting_after=params.get("starting_after") or None,
        ending_before=params.get("ending_before") or None,
    )


PLATFORM_ACCOUNT_ID = "acct_1FakeStripePlatform"


def account(caller: Caller) -> StripeObject:
    """``GET /v1/account``: the account the key acts on."""
    account_id = caller.account or PLATFORM_ACCOUNT_ID
    return {"id": account_id, "object": "account", "type": "standard", "country": "US"}


def connected_accounts(
    state: FakeStripeState, caller: Caller, params: StripeObject
) -> StripeObject:
    """``GET /v1/accounts``: the platform's connected accounts (only the platform may list)."""
    reject_unknown(params, {"limit", "starting_after", "expand", "created"})
    if caller.account:
        raise StripeFault(403, "Only a platform can list its connected accounts.")
    limit = integer("limit", params.get("limit", 10))
    if not 1 <= limit <= 100:
        raise StripeFault(400, "This value must be between 1 and 100.", param="limit")
    with state.lock:
        return state.platform.page(limit, params.get("starting_after") or None)


def perform(
    state: FakeStripeState,
    operation: str,
    caller: Caller,
    params: StripeObject,
    session_id: str | None = None,
) -> StripeObject:
    """Carry out one operation: ``account``, ``list``, ``create``, ``retrieve`` or ``expire``."""
    live, account_id = caller.livemode, caller.account
    state.policy.check(caller.key, caller.account, operation)
    if operation == "account":
        reject_unknown(params, {"expand"})
        return account(caller)
    if operation == "accounts":
        return connected_accounts(state, caller, params)
    if operation == "webhook_endpoints":
        reject_unknown(params, {"limit", "starting_after", "ending_before", "expand"})
        limit = integer("limit", params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise StripeFault(400, "This value must be between 1 and 100.", param="limit")
        with state.lock:
            endpoints = state.webhook_endpoints.get((live, account_id), [])
            return endpoint_page(endpoints, limit, params.get("starting_after") or None)
    if operation == "list":
        data, has_more = state.list_sessions(live, account_id, list_query(params))
        return {
            "object": "list",
            "data": data,
            "has_more": has_more,
            "url": "/v1/checkout/sessions",
        }
    if operation == "create":
        reject_unknown(params, CREATE_PARAMS)
        return state.create_session(live, account_id, params)
    reject_unknown(params, {"expand"})
    assert session_id is not None
    if operation == "retrieve":
        return state.retrieve(live, account_id, session_id)
    return state.expire(live, account_id, session_id)

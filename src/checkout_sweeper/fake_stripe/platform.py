"""A Connect platform: connected accounts the platform key may act on with ``Stripe-Account``.

Each connected account has its own sessions and its own rate limit (the state keys both by
account). ``GET /v1/accounts`` lists them, newest first, paginated as Stripe's lists are. A
``Stripe-Account`` naming an account that is not connected, or one that revoked the platform's
access, is Stripe's 403, also when no account is connected. Seeding sessions for an account
(``--account``, ``/_admin/seed``) connects it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.objects import StripeObject

_ALPHABET = string.ascii_letters + string.digits
NO_ACCESS = (
    "The provided key '{key}' does not have access to account '{account}' (or that account "
    "does not exist). Application access may have been revoked."
)


@dataclass
class Platform:
    connected: list[str] = field(default_factory=list)  # oldest first
    refusing: set[str] = field(default_factory=set)  # access revoked: 403 on Stripe-Account

    def connect(self, count: int) -> list[str]:
        made = [_new_account_id() for _ in range(count)]
        self.connected.extend(made)
        return made

    def adopt(self, account: str) -> None:
        """Connect ``account`` by its id, if it is not yet (the platform itself is "")."""
        if account and account not in self.connected:
            self.connected.append(account)

    def check(self, key: str, account: str) -> None:
        """Stripe's 403 for a ``Stripe-Account`` this key may not act on."""
        if not account:
            return
        if account not in self.connected or account in self.refusing:
            masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
            raise StripeFault(403, NO_ACCESS.format(key=masked, account=account))

    def page(self, limit: int, starting_after: str | None) -> StripeObject:
        """``GET /v1/accounts``: newest first from the cursor."""
        newest_first = list(reversed(self.connected))
        if starting_after is not None:
            if starting_after not in newest_first:
                raise StripeFault(
                    404, f"No such account: '{starting_after}'", code="resource_missing"
                )
            newest_first = newest_first[newest_first.index(starting_after) + 1 :]
        data = [_account(account_id) for account_id in newest_first[:limit]]
        return {
            "object": "list",
            "data": data,
            "has_more": len(newest_first) > limit,
            "url": "/v1/accounts",
        }


def _new_account_id() -> str:
    return "acct_1" + "".join(secrets.choice(_ALPHABET) for _ in range(15))


def _account(account_id: str) -> StripeObject:
    return {
        "id": account_id,
        "object": "account",
        "type": "express",
        "country": "US",
        "charges_enabled": True,
        "details_submitted": True,
    }

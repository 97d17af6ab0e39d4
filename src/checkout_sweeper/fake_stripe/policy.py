"""How the fake's sessions and keys behave, settable while it runs: how long a new session
lives before it expires by itself, and what a restricted key (``rk_...``) may not do (Stripe's
403 naming the permission it lacks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.ledger import LIFETIME_S
from checkout_sweeper.fake_stripe.objects import StripeObject

# The permission a restricted key needs for each operation, as Stripe's 403 names it.
PERMISSIONS = {
    "account": "rak_accounts_kyc_basic_read",
    "accounts": "rak_connected_account_read",
    "list": "rak_checkout_session_read",
    "retrieve": "rak_checkout_session_read",
    "create": "rak_checkout_session_write",
    "expire": "rak_checkout_session_write",
    "webhook_endpoints": "rak_webhook_read",
}


@dataclass
class Policy:
    """``lifetime_s`` of new sessions; ``restricted_lacks``: operations a restricted key may
    not call (by default reading its account, as many real restricted keys may not)."""

    lifetime_s: int = LIFETIME_S
    restricted_lacks: set[str] = field(default_factory=lambda: {"account"})

    @property
    def seed_span_s(self) -> int:
        """Seeded sessions are created over the last day, or less when they live less: an open
        session is never seeded past its ``expires_at`` (the oldest keeps 5%, 2 s at least)."""
        return min(86400, self.lifetime_s - max(2, self.lifetime_s // 20))

    def update(self, settings: StripeObject) -> StripeObject:
        """Change either setting; return both. ``ValueError`` names a bad one."""
        unknown = sorted(set(settings) - {"lifetime_s", "restricted_lacks"})
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        if "lifetime_s" in settings:
            lifetime = int(settings["lifetime_s"])
            if not 1 <= lifetime <= LIFETIME_S:
                raise ValueError(f"lifetime_s must be from 1 to {LIFETIME_S}")
            self.lifetime_s = lifetime
        if "restricted_lacks" in settings:
            lacks = settings["restricted_lacks"]
            if not isinstance(lacks, list):
                raise ValueError("restricted_lacks is a list of operations")
            self.restricted_lacks = {str(op).strip() for op in lacks if str(op).strip()}
        return {"lifetime_s": self.lifetime_s, "restricted_lacks": sorted(self.restricted_lacks)}

    def check(self, key: str, account: str, operation: str) -> None:
        """Stripe's 403 for a restricted key without the operation's permission."""
        if not key.startswith("rk_") or operation not in self.restricted_lacks:
            return
        masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
        on_account = f" on account '{account}'" if account else ""
        raise StripeFault(
            403,
            f"The provided key '{masked}' does not have the required permissions for this "
            f"endpoint{on_account}. Having the '{PERMISSIONS.get(operation, operation)}' "
            "permission would allow this request to continue.",
        )

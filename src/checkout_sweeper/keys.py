"""Stripe API keys as text: which are valid secret keys, which act in live mode, and a
non-secret name for the account a key acts on. No SDK here, so settings can check a key."""

from __future__ import annotations

import hashlib
import re

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
KEY_PATTERN = re.compile(r"^(sk|rk)_(test|live)_\w+$")


def is_live_key(api_key: str) -> bool:
    return api_key.startswith(LIVE_KEY_PREFIXES)


def account_fingerprint(api_key: str, stripe_account: str | None = None) -> str:
    """A stable, non-secret name for the account a key acts on, for locks and audit rows."""
    digest = hashlib.sha256(f"{api_key}\0{stripe_account or ''}".encode()).hexdigest()[:16]
    mode = "live" if is_live_key(api_key) else "test"
    return f"{mode}:{digest}"

"""Stripe API keys as text: which are valid secret keys, which act in live mode, and a
non-secret name for the account a key acts on. No SDK here, so settings can check a key."""

from __future__ import annotations

import hashlib
import re

LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
KEY_PATTERN = re.compile(r"^(sk|rk)_(test|live)_\w+$")


KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")


def key_problem(api_key: str | None, given_as: str = "STRIPE_API_KEY") -> str | None:
    """What is wrong with the key (``given_as``: where it came from, ``STRIPE_API_KEY`` or
    ``--api-key``) as a key that can expire sessions, in one sentence a user can act on; None
    when it looks right."""
    if api_key is None:
        return f"{given_as} is not set: export the secret key of the account to sweep"
    if not api_key.strip():
        return f"{given_as} is empty: export the secret key of the account to sweep"
    if api_key != api_key.strip():
        return f"{given_as} has spaces or a line break around it: remove them"
    if api_key.startswith(("pk_test_", "pk_live_")):
        return (
            f"{given_as} is a publishable key (pk_): it cannot expire sessions; use the "
            "secret (sk_) or a restricted (rk_) key"
        )
    prefix = next((p for p in KEY_PREFIXES if api_key.startswith(p)), None)
    if prefix is None:
        return (
            f"{given_as} does not look like a Stripe secret key: it should start with "
            f"{', '.join(KEY_PREFIXES)}"
        )
    if not KEY_PATTERN.match(api_key):
        if api_key == prefix:
            return f"{given_as} is only the prefix {prefix}: the rest of the key is missing"
        return f"{given_as} has characters a Stripe key never has after {prefix}"
    return None


def is_live_key(api_key: str) -> bool:
    return api_key.startswith(LIVE_KEY_PREFIXES)


def account_fingerprint(api_key: str, stripe_account: str | None = None) -> str:
    """A stable, non-secret name for the account a key acts on, for locks and audit rows."""
    digest = hashlib.sha256(f"{api_key}\0{stripe_account or ''}".encode()).hexdigest()[:16]
    mode = "live" if is_live_key(api_key) else "test"
    return f"{mode}:{digest}"

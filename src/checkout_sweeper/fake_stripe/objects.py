"""The one name for the JSON objects the fake reads and answers."""

from __future__ import annotations

from typing import Any

StripeObject = dict[str, Any]
"""A JSON object as Stripe's API takes and gives it (parameters, sessions, lists, errors; the
admin surface answers the same way). Stripe adds fields often, so the fake keeps them open."""

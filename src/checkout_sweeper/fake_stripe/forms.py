"""Decode Stripe's form encoding (``metadata[order]=1``, ``line_items[0][price]=p``) into dicts.

The official SDKs send nested parameters this way on GET and POST alike, so the fake must read
them the way Stripe does before it can validate anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from checkout_sweeper.fake_stripe.objects import StripeObject

_KEY_PART = re.compile(r"\[([^\]]*)\]")


class FormError(ValueError):
    """A parameter name that cannot be decoded; carries the offending name."""

    def __init__(self, param: str) -> None:
        super().__init__(f"Invalid parameter name: {param}")
        self.param = param


def _split_key(name: str) -> list[str]:
    head, _, rest = name.partition("[")
    if not head:
        raise FormError(name)
    parts = [head]
    if rest:
        rest = "[" + rest
        consumed = "".join(f"[{m}]" for m in _KEY_PART.findall(rest))
        if consumed != rest:
            raise FormError(name)
        parts.extend(_KEY_PART.findall(rest))
    return parts


def _listify(node: object) -> object:
    """Turn dicts whose keys are all digits (or empty, for ``a[]``) into lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def decode_form(pairs: Iterable[tuple[str, str]]) -> StripeObject:
    """Build a nested dict from ``(name, value)`` pairs in Stripe's bracket notation; the top
    level stays a dict of parameter names, even names that are digits."""
    root: StripeObject = {}
    append_counters: dict[tuple[str, ...], int] = {}
    for name, value in pairs:
        parts = _split_key(name)
        node = root
        path: list[str] = []
        for i, part in enumerate(parts):
            if part == "":
                prefix = tuple(path)
                part = str(append_counters.get(prefix, 0))
                append_counters[prefix] = int(part) + 1
            path.append(part)
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise FormError(name)
                node = child
    return {name: _listify(value) for name, value in root.items()}

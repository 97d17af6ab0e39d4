"""Durations as people write them (``90s``, ``30m``, ``2h``, ``1d``), for ages and windows."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
PATTERN = re.compile(r"(\d+)\s*([smhdw])")
EXAMPLES = "90s, 30m, 2h, 1d or 1w"


def parse_duration(text: str) -> int:
    """Whole seconds; ``ValueError`` naming the accepted forms for anything else."""
    match = PATTERN.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {text!r}")
    return int(match.group(1)) * UNITS[match.group(2)]

"""Stripe's rate limit as the fake applies it: a sliding one-second window per account."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class SlidingWindowLimiter:
    """``admit`` says whether one more request fits in the last second; callers hold a lock."""

    def __init__(self) -> None:
        self._windows: dict[Hashable, deque[float]] = {}

    def admit(self, account: Hashable, rps: float, now: float) -> bool:
        if rps <= 0:
            return True
        window = self._windows.setdefault(account, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= rps:
            return False
        window.append(now)
        return True

    def clear(self) -> None:
        self._windows.clear()

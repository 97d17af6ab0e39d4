"""What a pacing bucket knows of the others spending the account's budget (the app the sweep
cleans up after): whether they do, the margin left for their bursts, and how long to hold
before probing for room they may have freed. See ``pacing`` for how the bucket uses it."""

from __future__ import annotations

SETTLE_SHARE = 0.985  # where the rate settles alone, as a share of the learned limit
QUIET_BEFORE_PROBE_S = 20.0  # time without a 429 before probing above the learned limit, alone
SHARED_BELOW = 0.92  # a learned limit under this share of the documented one: the budget is shared
SHARED_SETTLE_SHARE = 0.85  # where the rate settles then: room for the app's bursts
BURST_STEP = 0.88  # a 429 while holding under a shared limit widens the margin this much
MIN_SHARED_SHARE = 0.6  # the widest margin: 60% of the learned limit
MARGIN_RELAX_PER_S = 0.001  # and it narrows back by 0.1 point a second while no burst comes
SHARED_QUIET_S = 30.0  # and the quiet spell before probing (each probe costs them a 429 or two)
SHARED_QUIET_MAX_S = 240.0  # doubled after each probe that found no room, up to this


class BurstMargin:
    """Where a shared limit's rate settles, as a share of it: each burst of the app that finds
    a full second (a 429 while holding) widens the margin, which narrows back slowly while no
    burst comes, so an app whose requests come in bursts gets more room than a steady one."""

    def __init__(self) -> None:
        self._share = SHARED_SETTLE_SHARE
        self._at = float("-inf")

    def share(self, now: float) -> float:
        return min(SHARED_SETTLE_SHARE, self._share + MARGIN_RELAX_PER_S * (now - self._at))

    def widen(self, now: float) -> None:
        self._share, self._at = max(MIN_SHARED_SHARE, self.share(now) * BURST_STEP), now


class ProbeSpacing:
    """How long a shared limit's rate holds before probing above it. Each probe costs the app
    a 429 or two: one that finds no room doubles the wait before the next, one that finds
    room (the app went quiet) brings it back to ``SHARED_QUIET_S``."""

    def __init__(self) -> None:
        self.quiet_s = SHARED_QUIET_S

    def found_room(self) -> None:
        self.quiet_s = SHARED_QUIET_S

    def found_none(self) -> None:
        self.quiet_s = min(SHARED_QUIET_MAX_S, 2 * self.quiet_s)


class Neighbours:
    """Whether someone else spends the budget, and what the bucket leaves them."""

    def __init__(self, documented: float | None) -> None:
        self.documented = documented  # Stripe's documented limit of the mode, if known
        self.margin = BurstMargin()
        self.probes = ProbeSpacing()

    def present(self, learned: float | None) -> bool:
        """The learned limit is well under the documented one: someone else spends the rest."""
        return learned is not None and self.room_left_by(learned)

    def room_left_by(self, rate: float) -> bool:
        """``rate`` leaves part of the documented limit to others."""
        return self.documented is not None and rate < SHARED_BELOW * self.documented

    def settle_share(self, learned: float | None, now: float) -> float:
        """Just under the limit alone; shared, under the burst margin."""
        return self.margin.share(now) if self.present(learned) else SETTLE_SHARE

    def quiet_s(self, learned: float | None) -> float:
        """How long the rate holds at the settling rate before probing above it."""
        return self.probes.quiet_s if self.present(learned) else QUIET_BEFORE_PROBE_S

    def held_429(self, probing: bool, now: float) -> None:
        """A 429 while holding under a shared limit: a probe found no room (the next waits
        longer), or the app's burst found a full second (the margin widens)."""
        if probing:
            self.probes.found_none()
        else:
            self.margin.widen(now)

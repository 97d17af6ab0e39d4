"""Client-side pacing: a token bucket that learns where Stripe's rate limit is and stays under it.

Stripe counts every request of an account against one budget, so one bucket paces the listing
and the expiring threads alike, evenly spaced. Even spacing is planned, not guaranteed: a thread
that wakes late (the interpreter busy decoding a page of sessions) sends closer to the next
one, and a one-second window then holds one request too many. So the actual send times of the
last second are kept too, and a request waits while the last ``WINDOW_S`` already holds the
rate's worth (rounded up): no one-second window sees more than the rate, however the threads
are scheduled. The rate never exceeds ``ceiling`` (a fixed ``SWEEPER_MAX_RPS``, or the mode's
documented limit for ``auto``).

A 429 says the real limit is lower than the rate in force (or that the app spends part of the
budget). The bucket remembers that rate as the *learned limit* and cuts by 15%, and by 3% more
for each further 429 of the same burst (requests in flight answer 429 together: a few 429s
mean the rate was just over, many that it was far over), then climbs back along a concave
curve (fast at first, slow near the limit, as TCP CUBIC approaches its last window) to just
under the learned limit, and holds there. Only after a quiet spell does it probe slowly above,
in case the other traffic went away. So it settles just under the limit instead of oscillating
between the limit and 70% of it.

Far over the limit (a budget of 60 against a limit of 25), what Stripe let through in the last
second is far below the rate while that second holds several 429s: that is learned at once
instead of in five cuts, and the 429s of requests already in flight do not cut further. What
got through is the share of the second's answers let through times what was sent that second,
so a dip in sending (threads backing off after 429s) is not read as a lower limit; and it is
read only over a full second of answers, since at the start the pool is still filling and a
token bucket's small burst allowance answers the first requests.

Just under the limit, a stray 429 while holding (a request that arrived a little early) steps
the learned limit down by only 0.5%, so stray 429s do not ratchet the rate down.

A good neighbour: the app the sweep cleans up after spends the same budget, and its requests
arrive at moments of its own (``neighbours``). A learned limit well under the account's
documented one says someone else spends the rest; the bucket then settles further below it
(``SHARED_SETTLE_SHARE``) so the app's requests find room in every second. While its rate
leaves room for others, the sweep does not hold on to its places in Stripe's window: a sweep
that waits for its own oldest send to leave the window before sending again takes back every
place it frees, so the app's requests meet every full second and the sweep never does (it
learns nothing). With one place more than the rate's worth, evenly spaced sends land on either
side of that moment: a full second refuses the sweep as often as the app, and the sweep's own
429s tell of the app's bursts. Each such 429 while holding widens the margin (``BURST_STEP``),
which narrows back slowly while no burst comes, so an app whose requests come in bursts gets
more room than a steady one; and a 429 cuts a shared rate to the margin at once (a full second
costs the app requests too). Probes above a shared limit cost the app a 429 or two each: one
that finds no room doubles the wait before the next (``ProbeSpacing``); when the app goes
quiet, a probe finds the room and takes it. Near the documented limit (alone, using it all)
the sweep keeps its places, so it never refuses itself.

A storm (every answer of the last second a 429: an outage, or another client taking
everything) teaches nothing about the limit: the learned limit stays what it was, the rate
drops to the floor while the storm lasts, and the first answer that gets through starts the
climb back to the last good rate (seconds, not minutes). ``storm_s`` says how long it has
lasted, for a sweep that will not wait for ever.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from .neighbours import Neighbours

DECREASE_ON_429 = 0.85  # the rate after a 429, as a share of the rate that drew it
DECREASE_WHILE_HOLDING = 0.95  # the same for a stray 429 while holding at the settling rate
STRIPE_TEST_LIMIT = 25.0  # Stripe's documented requests per second per account, sandbox
STRIPE_LIVE_LIMIT = 100.0  # and live mode: where SWEEPER_MAX_RPS=auto starts
CLIMB_S = 3.0  # time to climb back from a cut to the settling rate
PROBE_PER_S = 0.01  # probing growth: 1% of the learned limit per second at first
PROBE_SPEEDUP_S = 10.0  # and that much faster again every this many seconds it goes unrefused
SAME_BURST_S = 0.5  # 429s this close together are one event (answers already in flight)
EXTRA_429_SHARE = 0.97  # each further 429 of one event: the rate was that much further over
FAR_OVER_SHARE = 0.7  # what got through is under this share of the rate: learn that instead
HOLD_429_SHARE = 0.995  # a 429 while holding at the settling rate: the learned limit's step down
REPLAN_S = 0.25  # a slot further off than this is planned again nearer the time
WINDOW_S = 1.01  # the window whose sends are counted: a second, plus the way to the socket
ROOM_GREW = 1.05  # a 429 only this far above the learned limit does not raise it


class RecentTimes:
    """The times of events within the last ``span_s`` seconds, oldest first; kept short by
    dropping older ones on every add, so a long sweep holds a second's worth, never more."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._times: deque[float] = deque()

    def count(self, now: float) -> int:
        times = self._times
        while times and times[0] + self.span_s <= now + 1e-9:  # (a clock's rounding)
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self.count(now)
        self._times.append(now)

    def free_at(self) -> float:
        """When the oldest event leaves the span."""
        return self._times[0] + self.span_s


class RecentAnswers:
    """Stripe's answers over the last second: when many were 429s, what got through is the
    best guess of the limit (as a window limiter counts). When few were, little got through
    only because little was sent (threads backing off after a 429): that says nothing."""

    MIN_ACCEPTED = 5  # fewer say nothing yet
    MIN_REFUSED = 3  # one 429 or two are no sign of being far over

    def __init__(self) -> None:
        self._accepted = RecentTimes(1.0)
        self._refused = RecentTimes(1.0)
        self._since: float | None = None

    def accepted(self, now: float) -> None:
        if self._since is None:
            self._since = now
        self._accepted.add(now)

    def refused(self, now: float) -> None:
        if self._since is None:
            self._since = now
        self._refused.add(now)

    def refused_within_second(self, now: float) -> int:
        return self._refused.count(now)

    def all_refused(self, now: float) -> bool:
        """The last second held several answers, every one of them a 429: a storm."""
        if self._since is None or now - self._since < 1.0:
            return False
        return self._accepted.count(now) == 0 and self._refused.count(now) >= self.MIN_REFUSED

    def accepted_share_when_refused(self, now: float) -> float | None:
        """The share of the last second's answers that got through, when that second also
        holds several 429s."""
        if self._since is None or now - self._since < 1.0:
            return None  # answers of less than a second: the start, not the limit
        accepted = self._accepted.count(now)
        refused = self._refused.count(now)
        if accepted < self.MIN_ACCEPTED or refused < self.MIN_REFUSED:
            return None
        return accepted / (accepted + refused)

    def let_through_rps(self, now: float, sent: int) -> float | None:
        """What Stripe let through a second, when the last second held several 429s: the
        share of its answers let through times ``sent``, what was sent in it."""
        share = self.accepted_share_when_refused(now)
        return None if share is None else share * sent / WINDOW_S


class StormWatch:
    """A storm: every answer of the last second a 429. An outage teaches nothing about the
    limit, so it keeps the learned limit from before the trouble began."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.limit_before: float | None = None

    def refused(self, answers: RecentAnswers, now: float, learned: float | None) -> bool:
        """Count a 429 in ``answers``; True while a storm lasts."""
        if answers.refused_within_second(now) == 0:  # the first 429 in a while
            self.limit_before = learned
        answers.refused(now)
        if self.since is None and answers.all_refused(now):
            self.since = now
        return self.since is not None

    def lasted(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since


def climb(elapsed_s: float, start: float, target: float) -> float:
    """From ``start`` towards ``target`` in ``CLIMB_S``: fast at first, slow near it."""
    left = 1.0 - elapsed_s / CLIMB_S
    return target - (target - start) * left**3


class SpacedSlots:
    """Hands out request slots at ``rate_at(now)`` per second, evenly spaced, and never more
    than the rate in any one-second window; thread-safe; clock and sleep injected."""

    def __init__(
        self,
        rate: float,
        burst: float | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        jitter: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.jitter = jitter  # each send a random share of an interval late (see ``acquire``)
        self._random = random.Random()
        # At hundreds a second a 5% catch-up absorbs thread-scheduling jitter.
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_slot = float("-inf")  # the latest slot taken
        self._hold_until = clock()  # no slot before (a 429's pause, Retry-After)
        self._sent = RecentTimes(WINDOW_S)  # actual send times

    def rate_at(self, now: float) -> float:
        return self.rate

    def acquire(self, ahead: bool = False) -> None:
        """Block until this caller may send one request; ``ahead``: before those waiting."""
        while True:
            wait, reserved = self._reserve_slot(ahead)
            if wait > 0:
                self._sleep(wait)
            if reserved:
                break
        while (wait := self._take_window_place()) > 0:
            self._sleep(wait)

    def _reserve_slot(self, ahead: bool) -> tuple[float, bool]:
        """The wait for the next slot, and whether it was taken. A slot further off than
        ``REPLAN_S`` is not taken: the caller waits that long and asks again, since the rate
        may have changed by then (a thread that took a slot a second ahead at a storm's
        1 req/s would sleep through the climb back). So the slot after the last one taken is
        never further off than ``REPLAN_S`` and an interval, and a caller ``ahead`` takes it:
        it goes before every caller still asking, however many they are (the listing, which
        the expire threads wait for, would otherwise win one ask in as many as there are
        threads, and leave them idle at the start of a sweep)."""
        with self._lock:
            now = self._clock()
            self.rate = self.rate_at(now)
            interval = 1.0 / self.rate
            # one interval at the rate in force after the last slot: a rate that rose since
            # shortens the wait of those already waiting
            earliest = max(self._last_slot + interval, self._hold_until)
            slot = max(earliest, now - (self.burst - 1) * interval)
            if slot - now > REPLAN_S + (interval if ahead else 0.0):
                return REPLAN_S, False
            self._last_slot = slot
            late = self._random.uniform(0, self.jitter * interval) if self.jitter else 0.0
        # Sent exactly on time, a sweep would take every slot the instant an older request
        # leaves Stripe's one-second window, and the app's requests, arriving at moments of
        # their own, would find the window full: late by a random share, the sweep meets its
        # own 429s (and gives way) instead of handing them all to its neighbour.
        return slot + late - now, True

    def _take_window_place(self) -> float:
        """Count this send if the last ``WINDOW_S`` has room for it; else how long to wait."""
        with self._lock:
            now = self._clock()
            if self._sent.count(now) < self.window_places():
                self._sent.add(now)
                return 0.0
            return self._sent.free_at() - now

    def window_places(self) -> int:
        """How many sends the last ``WINDOW_S`` may hold: the rate's worth."""
        return math.ceil(self.rate)


class AdaptiveTokenBucket(SpacedSlots):
    """Slots at a rate that learns where Stripe's limit is (see the module's docstring)."""

    def __init__(
        self,
        ceiling: float,
        *,
        account_limit: float | None = None,
        burst: float | None = None,
        min_rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: float = 0.0,
    ) -> None:
        super().__init__(ceiling, burst, clock, sleep, jitter)
        self.max_rate = ceiling
        self.min_rate = min(min_rate, ceiling)
        self.learned_limit: float | None = None
        self._cut_at = float("-inf")
        self._cut_rate = ceiling
        self._learned_from_answers_at = float("-inf")
        self._answers = RecentAnswers()
        self._storm = StormWatch()
        self._others = Neighbours(account_limit)

    def answered(self) -> None:
        """Stripe answered without refusing for the rate (what the limit let through); the
        first answer after a storm starts the climb back to the last good rate."""
        with self._lock:
            now = self._clock()
            self._answers.accepted(now)
            if self._storm.since is not None:
                self._storm.since = None
                self._cut_at, self._cut_rate = now, self.min_rate

    def storm_s(self) -> float:
        """How long every request has been refused (0 when not in a storm)."""
        with self._lock:
            return self._storm.lasted(self._clock())

    def penalize(self, retry_after_s: float | None = None) -> None:
        """Stripe said 429: learn the limit, cut the rate once per burst, honour Retry-After."""
        with self._lock:
            now = self._clock()
            began = self._storm.since is None
            storming = self._storm.refused(self._answers, now, self.learned_limit)
            rate = self.rate_at(now)
            if storming:
                self._weather_storm(began)
            elif now - self._cut_at >= SAME_BURST_S or self.learned_limit is None:
                learned = self.learned_limit  # at the settling rate or above: holding
                holding = learned is not None and rate >= self._settle(learned, now)
                self.learned_limit = self._far_over(now, self._limit_after_429(rate, holding, now))
                cut = DECREASE_WHILE_HOLDING if holding else DECREASE_ON_429
                self._cut_rate = max(self.min_rate, self._cut_from(rate, now) * cut)
                self._cut_at = now
            elif now - self._learned_from_answers_at >= SAME_BURST_S:
                self._deepen_cut(now, self.learned_limit)
            # else: the limit was just read from what got through; these 429s were sent before
            self.rate = self.rate_at(now)
            pause = retry_after_s if retry_after_s is not None else 1.0 / self.rate
            self._hold_until = max(self._hold_until, now + pause)

    def _weather_storm(self, began: bool) -> None:
        """Everything refused: keep the limit learned before the trouble (none, if the sweep
        had met no limit yet) and send at the floor until something gets through."""
        if began:
            self.learned_limit = self._storm.limit_before
            if self.learned_limit is None:
                self._cut_at = float("-inf")
        self._cut_rate = self.min_rate

    def _cut_from(self, rate: float, now: float) -> float:
        """The rate a cut starts from: the one that drew the 429, at most the learned limit;
        shared, at most the margin (a full second costs the app requests: leave it at once)."""
        learned = self.learned_limit
        top = rate if learned is None else min(rate, learned)
        return min(top, self._settle(learned, now)) if learned and self.shared() else top

    def _deepen_cut(self, now: float, learned_limit: float) -> None:
        """A further 429 of the same burst: many at once say the limit is further below,
        a few call for a gentle cut."""
        limit = max(self.min_rate, learned_limit * EXTRA_429_SHARE)
        self.learned_limit = self._far_over(now, limit)
        self._cut_rate = max(
            self.min_rate,
            min(self._cut_rate * EXTRA_429_SHARE, self.learned_limit * DECREASE_ON_429),
        )

    def _far_over(self, now: float, limit: float) -> float:
        """``limit``, or what Stripe let through in the last second when that is well under
        it and the same second held several 429s: sent at 60 a second against a limit of 25,
        one cut to what got through instead of five cuts of 15% (and the 429s each of them
        costs)."""
        accepted = self._answers.let_through_rps(now, self._sent.count(now))
        if accepted is None or accepted >= limit * FAR_OVER_SHARE:
            return limit
        self._learned_from_answers_at = now
        return max(self.min_rate, accepted)

    def _limit_after_429(self, rate: float, holding: bool, now: float) -> float:
        """A 429 while climbing back says the limit is at most ``rate``. One while holding is
        as likely a request that arrived a little early (not a new limit): the learned limit
        comes down by a small step, so that stray 429s do not ratchet the rate down and a
        limit that really fell is still followed, 429 by 429; shared, the margin widens."""
        if not holding or self.learned_limit is None:
            return rate
        if rate > self.learned_limit * ROOM_GREW:  # a probe went well past it: room was freed
            self._others.probes.found_room()
            return rate
        if self.shared():
            self._others.held_429(self._probing_s(now) >= 0, now)
        return self.learned_limit * HOLD_429_SHARE

    def window_places(self) -> int:
        """The rate's worth, and one more while the rate leaves room for others: the sweep
        does not hold on to its places (see the module's docstring)."""
        return super().window_places() + int(self._others.room_left_by(self.rate))

    def shared(self) -> bool:
        """The learned limit is well under the documented one: someone else spends the rest."""
        return self._others.present(self.learned_limit)

    def _probing_s(self, now: float) -> float:
        """How long it has probed above the limit: past the climb and the quiet spell after
        the last cut (negative before)."""
        return now - self._cut_at - CLIMB_S - self._others.quiet_s(self.learned_limit)

    def _settle(self, limit: float, now: float) -> float:
        return max(self.min_rate, limit * self._others.settle_share(self.learned_limit, now))

    def rate_at(self, now: float) -> float:
        """The rate in force at ``now``: the ceiling until a 429, then the learned curve; the
        floor during a storm."""
        if self._storm.since is not None:
            return self.min_rate
        limit = self.learned_limit
        if limit is None:
            ceiling = self.max_rate
            since = now - self._cut_at
            return ceiling if since >= CLIMB_S else climb(since, self._cut_rate, ceiling)
        settle = self._settle(limit, now)
        since, probing = now - self._cut_at, self._probing_s(now)
        if since < CLIMB_S:
            rate = climb(since, self._cut_rate, settle)
        elif probing < 0:
            rate = settle
        else:  # slow at first, faster the longer it goes unrefused
            rate = settle + limit * PROBE_PER_S * probing * (1 + probing / PROBE_SPEEDUP_S)
        return max(self.min_rate, min(self.max_rate, rate))

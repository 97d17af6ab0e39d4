"""Sweep throughput against the configured Stripe budget: our engine and a sequential baseline.

Each row runs in a fresh process (so its peak RSS is its own) against ``checkout-sweeper
fake-stripe`` in another process with a Stripe-like rate limit and latency. The baseline is the
spec's approach made complete: list a page of open sessions, expire them one by one, list again.
The memory rows run the command a user runs, ``checkout-sweeper sweep --yes --json`` (audit
trail included), and report its peak RSS.

    python bench/sweep_benchmark.py            # the full table (about 40 minutes)
    python bench/sweep_benchmark.py --quick    # smaller counts, same rows
    python bench/sweep_benchmark.py --only latency --only =auto   # some rows
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from checkout_sweeper.engine.sweeper import SweepOptions

from _support import print_table, running_fake

KEY = "sk_test_benchmarkkey0001"
NEIGHBOUR_KEY = "sk_test_theappitself0001"  # the same account: a second key of it
LIVE_KEY = "sk_live_benchmarkkey0001"


@dataclass(frozen=True)
class Scenario:
    name: str
    engine: str  # "engine", "sequential" or "cli" (the ``sweep`` command)
    sessions: int
    stripe_rps: float
    latency_ms: str
    max_rps: float | None  # None: SWEEPER_MAX_RPS=auto
    concurrency: int | None = None  # SWEEPER_CONCURRENCY, a ceiling (None: auto)
    fail_rate: float = 0.0
    race_rate: float = 0.0
    live: bool = False  # a live-mode key (auto then starts at 100)
    other_rps: float = 0.0  # another client of the same account (the app), spending this much
    poisson: bool = False  # the other client's requests at random moments, not on a schedule
    burst: float = 0.0  # the fake limits with a token bucket of this many (0: a one-second window)
    storm_at_s: float = 0.0  # seconds in, every request is refused (429) for ``storm_s``
    storm_s: float = 0.0
    reserve: float | None = None  # SWEEPER_RESERVE (None: by mode, half of a live limit)
    tail_rate: float = 0.0  # share of answers ``tail_factor`` times slower (a heavy tail)
    tail_factor: float = 5.0


def scenarios(quick: bool) -> list[Scenario]:
    big = 600 if quick else 2000
    base = 100 if quick else 300
    slow = 400 if quick else 1200  # the latency rows: the 1,200 sessions
    return [
        Scenario("stripe-like", "engine", big, 25, "150-400", 20),
        Scenario("stripe-like", "sequential", base, 25, "150-400", 20),
        Scenario("stripe-like, 5% 5xx + 5% races", "engine", big, 25, "150-400", 20, 8, 0.05, 0.05),
        Scenario("fast", "engine", big, 100, "50", 90, 16),
        Scenario("fast", "sequential", base, 100, "50", 90),
        Scenario("budget just under the limit", "engine", big // 2, 25, "150-400", 24),
        Scenario("budget over the limit", "engine", big, 25, "175-325", 40),
        Scenario("budget over the limit", "engine", big, 25, "175-325", 60),
        Scenario("budget far over the limit", "engine", big, 25, "175-325", 100),
        Scenario("auto", "engine", big, 25, "175-325", None),
        Scenario("auto, token bucket of 5", "engine", big, 25, "175-325", None, burst=5),
        Scenario(
            "budget over the limit, token bucket of 5", "engine", big, 25, "175-325", 60, burst=5
        ),
        Scenario("auto, app spends 10 of 25", "engine", big, 25, "175-325", None, other_rps=10),
        Scenario(
            "default, app sends 6/s steady", "cli", big * 3 // 4, 25, "175-325", 20, other_rps=6
        ),
        Scenario(
            "default, app sends 6/s at random",
            "cli",
            big * 3 // 4,
            25,
            "175-325",
            20,
            other_rps=6,
            poisson=True,
        ),
        Scenario(
            "auto, app sends 6/s steady", "cli", big * 3 // 4, 25, "175-325", None, other_rps=6
        ),
        Scenario("default, no storm", "cli", big * 3 // 4, 25, "175-325", 20),
        Scenario(
            "default, 15 s storm of 429s",
            "cli",
            big * 3 // 4,
            25,
            "175-325",
            20,
            storm_at_s=10,
            storm_s=15,
        ),
        Scenario("auto, live-like", "engine", big * 2, 100, "50", None, 16, live=True),
        Scenario(
            "auto, live-like, no reserve",
            "engine",
            big * 2,
            100,
            "50",
            None,
            16,
            live=True,
            reserve=0,
        ),
        Scenario("auto, the sweep command", "cli", big * 3 // 4, 25, "175-325", None),
        Scenario(
            "budget over the limit, the sweep command", "cli", big * 3 // 4, 25, "175-325", 60
        ),
        Scenario("latency 150 ms", "engine", slow, 25, "150", None),
        Scenario("latency 600 ms, 5% 5x slower", "engine", slow, 25, "600", None, tail_rate=0.05),
        Scenario("latency 1200 ms", "engine", slow, 25, "1200", None),
        Scenario("latency 300 ms, live-like limit", "engine", slow * 5 // 2, 100, "300", 100),
        Scenario("memory, 1k sessions", "cli", 1000, 0, "0", 400),
        Scenario("memory, 20k sessions", "cli", 5000 if quick else 20000, 0, "0", 400),
        Scenario("memory, 50k sessions", "cli", 10000 if quick else 50000, 0, "0", 400),
        Scenario("memory, 100k sessions", "cli", 20000 if quick else 100000, 0, "0", 400),
    ]


# the measured side: runs in a child process ---------------------------------------------------
def run_engine(url: str, s: Scenario) -> dict:
    from checkout_sweeper.engine.sweeper import Sweeper
    from checkout_sweeper.stripe_api.adapter import StripeGateway

    gateway = StripeGateway(LIVE_KEY if s.live else KEY, api_base=url)
    options = SweepOptions(max_rps=s.max_rps, concurrency=s.concurrency, reserve=s.reserve)
    result = Sweeper(gateway, options).run()
    return {
        "closed": result.expired_count + result.already_closed_count,
        "failed": len(result.failed),
        "remaining": result.remaining_open_count,
        "requests": result.stripe_requests,
        "rate_limited": result.rate_limited,
        "most_in_flight": result.most_in_flight,
    }


def run_sequential(url: str, s: Scenario) -> dict:
    import stripe

    client = stripe.StripeClient(KEY, base_addresses={"api": url})
    closed = failed = 0
    while True:
        try:
            page = client.v1.checkout.sessions.list({"status": "open", "limit": 100})
        except stripe.StripeError:
            failed += 1
            continue
        if not page.data:
            break
        for session in page.data:
            try:
                client.v1.checkout.sessions.expire(session.id)
                closed += 1
            except stripe.InvalidRequestError:
                closed += 1  # already paid or expired
            except stripe.StripeError:
                failed += 1
    return {"closed": closed, "failed": failed, "remaining": 0}


def run_cli(url: str, s: Scenario) -> dict:
    with tempfile.TemporaryDirectory() as instance:
        env = {
            **os.environ,
            "STRIPE_API_KEY": LIVE_KEY if s.live else KEY,
            "STRIPE_API_BASE": url,
            "SWEEPER_MAX_RPS": "auto" if s.max_rps is None else str(s.max_rps),
            "SWEEPER_CONCURRENCY": "auto" if s.concurrency is None else str(s.concurrency),
            "SWEEPER_INSTANCE_PATH": instance,
            "SWEEPER_RESERVE": "auto" if s.reserve is None else str(s.reserve),
        }
        command = [sys.executable, "-m", "checkout_sweeper", "sweep", "--yes", "--json"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    result = json.loads(done.stdout)
    return {
        "closed": result["expired_count"] + result["already_closed_count"],
        "failed": len(result["failed"]),
        "remaining": result["remaining_open_count"],
        "requests": result["stripe_requests"],
        "rate_limited": result["rate_limited"],
        "most_in_flight": result["most_in_flight"],
    }


RUNNERS = {"engine": run_engine, "sequential": run_sequential, "cli": run_cli}


def worker(payload: str) -> None:
    url, fields = json.loads(payload)
    s = Scenario(**fields)
    import checkout_sweeper.stripe_api.adapter  # noqa: F401  (the SDK's import is not the sweep)

    started = time.perf_counter()
    outcome = RUNNERS[s.engine](url, s)
    outcome["seconds"] = time.perf_counter() - started
    whose = resource.RUSAGE_CHILDREN if s.engine == "cli" else resource.RUSAGE_SELF
    outcome["peak_rss_mb"] = resource.getrusage(whose).ru_maxrss / 1024
    print(json.dumps(outcome))


# the driving side ---------------------------------------------------------------------------------
@dataclass
class Neighbour:
    """What the other client of the account sent, and how many of its requests got a 429."""

    sent: int = 0
    refused: int = 0


@contextlib.contextmanager
def other_client(url: str, rps: float, poisson: bool) -> Iterator[Neighbour]:
    """The app's own traffic on the same account: ``rps`` small listings a second, on a
    schedule or at random moments (a Poisson process of the same mean)."""
    seen = Neighbour()
    if rps <= 0:
        yield seen
        return
    done = threading.Event()
    lock = threading.Lock()
    rng = random.Random(11)

    def one() -> None:
        answer = requests.get(
            f"{url}/v1/checkout/sessions",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {NEIGHBOUR_KEY}"},
            timeout=10,
        )
        with lock:
            seen.sent += 1
            seen.refused += answer.status_code == 429

    def spend(pool: ThreadPoolExecutor) -> None:
        next_at = time.monotonic()
        while not done.wait(max(0.0, next_at - time.monotonic())):
            pool.submit(one)  # on a schedule, whatever the latency
            next_at += rng.expovariate(rps) if poisson else 1 / rps

    with ThreadPoolExecutor(32) as pool:
        thread = threading.Thread(target=spend, args=(pool,), daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            done.set()
            thread.join()


@contextlib.contextmanager
def storm(url: str, at_s: float, length_s: float) -> Iterator[None]:
    """Every request refused with a 429 (no Retry-After) from ``at_s`` for ``length_s``."""
    if length_s <= 0:
        yield
        return

    def refuse(share: float) -> None:
        requests.post(f"{url}/_admin/faults", json={"refuse_rate": share}, timeout=10)

    timers = [
        threading.Timer(at_s, refuse, (1.0,)),
        threading.Timer(at_s + length_s, refuse, (0.0,)),
    ]
    for timer in timers:
        timer.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()


def usable_rps(s: Scenario) -> float:
    """The smaller of the budget and the limit, less the reserve (by mode unless set)."""
    reserve = SweepOptions(reserve=s.reserve).reserve_share(s.live)
    return min(s.max_rps or s.stripe_rps, s.stripe_rps or 1e9) * (1 - reserve)


def measure(s: Scenario) -> tuple:
    fake_args = [
        "--rps",
        str(s.stripe_rps),
        "--latency-ms",
        s.latency_ms,
        "--fail-rate",
        str(s.fail_rate),
        "--race-rate",
        str(s.race_rate),
    ]
    if s.live:
        fake_args.append("--live")
    if s.burst:
        fake_args += ["--burst", str(s.burst)]
    if s.tail_rate:
        fake_args += ["--tail-rate", str(s.tail_rate), "--tail-factor", str(s.tail_factor)]
    with running_fake(*fake_args, open_=s.sessions, complete=s.sessions // 10) as url:
        with (
            other_client(url, s.other_rps, s.poisson) as neighbour,
            storm(url, s.storm_at_s, s.storm_s),
        ):
            child = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps([url, s.__dict__])],
                capture_output=True,
                text=True,
                check=True,
            )
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
        stats = requests.get(f"{url}/_admin/stats", timeout=10).json()
    total = outcome.get("requests", stats["requests_total"])  # the sweeper's own
    limited = outcome.get("rate_limited", stats["rate_limited"])
    rate = (total - limited) / outcome["seconds"]
    budget = "auto" if s.max_rps is None else f"{s.max_rps:g}"
    most = outcome.get("most_in_flight", stats["max_in_flight"])
    return (
        s.name,
        s.engine,
        s.sessions,
        f"{budget}/{s.stripe_rps:g}" if s.stripe_rps else f"{budget}/-",
        f"{outcome['closed'] / outcome['seconds']:.1f}",
        f"{rate:.1f}",
        f"{100 * rate / usable_rps(s):.0f}%",
        limited,
        f"{100 * limited / max(total, 1):.1f}%",
        total,
        outcome["failed"],
        stats["open_total"],
        f"{neighbour.refused}/{neighbour.sent}" if neighbour.sent else "-",
        most,
        f"{outcome['seconds']:.1f}",
        f"{outcome['peak_rss_mb']:.0f}",
    )


def picks(name: str, only: str) -> bool:
    return name == only[1:] if only.startswith("=") else only in name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only",
        action="append",
        help="run the rows whose name contains this (=NAME: is exactly this); repeatable",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    rows = []
    for scenario in scenarios(args.quick):
        if args.only and not any(picks(scenario.name, only) for only in args.only):
            continue
        rows.append(measure(scenario))
        print(f"done: {scenario.name} / {scenario.engine}", file=sys.stderr)
    print_table(
        (
            "scenario",
            "sweeper",
            "sessions",
            "budget/limit rps",
            "sessions/s",
            "requests/s",
            "of budget or limit",
            "429s",
            "429 share",
            "requests",
            "failed",
            "left open",
            "app's 429s/requests",
            "most in flight",
            "seconds",
            "peak RSS MB",
        ),
        rows,
    )


if __name__ == "__main__":
    main()

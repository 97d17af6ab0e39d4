"""How many requests a second the fake serves: it must never be what limits a benchmark.

Starts ``checkout-sweeper fake-stripe`` in its own process (no latency, no rate limit) and drives
it from a pool of threads, first listing pages, then expiring sessions: once with plain HTTP
(keep-alive ``requests`` sessions), which shows what the server itself can serve, and once with
the official SDK, whose own object decoding shares the same two cores.

    python bench/fake_throughput.py [--sessions 6000] [--threads 8]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import requests
import stripe

from _support import print_table, running_fake

KEY = "sk_test_benchmarkkey0001"
LIST_PATH = "/v1/checkout/sessions?status=open&limit=10"


def measure(fn: Callable[[str], object], items: Iterable[str], threads: int) -> tuple[int, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        count = sum(1 for _ in pool.map(fn, items))
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    rows = []
    with running_fake(open_=args.sessions) as url:
        client = stripe.StripeClient(KEY, base_addresses={"api": url})
        ids = [s.id for s in client.v1.checkout.sessions.list({"limit": 100}).auto_paging_iter()]
        half = len(ids) // 2
        local = threading.local()

        def http(method: str, path: str) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.headers["Authorization"] = f"Bearer {KEY}"
            local.session.request(method, url + path).raise_for_status()

        cases = (
            ("HTTP", "list (limit=10)", lambda _: http("GET", LIST_PATH), ids[:half]),
            (
                "HTTP",
                "expire",
                lambda i: http("POST", f"/v1/checkout/sessions/{i}/expire"),
                ids[:half],
            ),
            (
                "SDK",
                "list (limit=10)",
                lambda _: client.v1.checkout.sessions.list({"status": "open", "limit": 10}),
                ids[half : half + half // 4],
            ),
            ("SDK", "expire", lambda i: client.v1.checkout.sessions.expire(i), ids[half:]),
        )
        for kind, name, fn, items in cases:
            count, elapsed = measure(fn, items, args.threads)
            rows.append(
                (kind, name, args.threads, count, f"{elapsed:.2f}", f"{count / elapsed:.0f}")
            )
    print_table(
        ("client", "operation", "client threads", "requests", "seconds", "requests/s"), rows
    )


if __name__ == "__main__":
    main()

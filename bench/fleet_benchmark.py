"""A fleet sweep of a platform's connected accounts: the same fleet swept one account at a time
(``--parallel 1``, the sequential time) and with 2, 4 and 8 accounts at once in one process,
against ``checkout-sweeper fake-stripe --accounts N`` with Stripe's sandbox limit per account
and Stripe-like latency. Each row runs ``checkout-sweeper sweep --all-accounts --yes --json``,
the command a user runs, against a freshly seeded platform.

    python bench/fleet_benchmark.py                # 20 accounts of 100 open sessions
    python bench/fleet_benchmark.py --accounts 6 --open 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import requests

from _support import print_table, running_fake

KEY = "sk_test_benchmarkkey0001"


def sweep_fleet(url: str, parallel: int, folder: str) -> tuple[dict, float]:
    env = {
        **os.environ,
        "STRIPE_API_KEY": KEY,
        "STRIPE_API_BASE": url,
        "SWEEPER_INSTANCE_PATH": folder,
    }
    command = [sys.executable, "-m", "checkout_sweeper", "sweep", "--all-accounts", "--yes"]
    started = time.monotonic()
    ran = subprocess.run(
        [*command, "--json", "--parallel", str(parallel)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - started
    if ran.returncode != 0:
        raise SystemExit(f"the sweep failed ({ran.returncode}): {ran.stderr[-2000:]}")
    return json.loads(ran.stdout), took


def reseed(url: str, accounts: int, open_: int) -> None:
    requests.post(f"{url}/_admin/reset", json={}, timeout=10).raise_for_status()
    body = {"count": accounts, "open": open_}
    requests.post(f"{url}/_admin/accounts", json=body, timeout=30).raise_for_status()


def measure(url: str, parallel: int, args: argparse.Namespace, sequential: float | None) -> list:
    reseed(url, args.accounts, args.open)
    with tempfile.TemporaryDirectory() as folder:
        data, took = sweep_fleet(url, parallel, folder)
    by_account = requests.get(f"{url}/_admin/stats", timeout=10).json()["by_account"]
    shares = [
        seen["rate_limited"] / max(seen["requests"], 1)
        for account, seen in by_account.items()
        if account != "platform"
    ]
    return [
        parallel,
        args.accounts,
        data["expired_count"],
        f"{took:.1f}",
        f"{data['expired_count'] / took:.1f}",
        f"{(sequential or took) / took:.2f}x",
        f"{100 * max(shares, default=0):.1f}%",
        data["status"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--open", type=int, default=100)
    parser.add_argument("--parallel", default="1,2,4,8", help="the rows: accounts at once")
    args = parser.parse_args()
    rows: list[list] = []
    sequential = None
    limits = ("--rps", "25", "--latency-ms", "175-325")
    with running_fake(*limits) as url:
        for parallel in [int(p) for p in args.parallel.split(",")]:
            rows.append(measure(url, parallel, args, sequential))
            if parallel == 1:
                sequential = float(rows[-1][3])
            print(f"done: --parallel {parallel}", file=sys.stderr)
    print_table(
        (
            "accounts at once",
            "accounts",
            "expired",
            "seconds",
            "sessions/s",
            "speed-up",
            "worst account's 429 share",
            "status",
        ),
        rows,
    )


if __name__ == "__main__":
    main()

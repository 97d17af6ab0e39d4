"""``demo``: the whole flow offline in well under a minute.

A fake Stripe with a few hundred open sessions (plus paid and expired ones, a Stripe-like rate
limit and latency, a few transient errors and customers paying mid-sweep), a fresh SQLite
database with one user, a signed token, the API on a local port, and one real HTTP call to the
endpoint, watched live through the fake's own counters.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import requests
from flask import Flask
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from werkzeug.serving import make_server

from checkout_sweeper.cli.webhook_receiver import WebhookReceiver
from checkout_sweeper.engine.pacing import STRIPE_TEST_LIMIT
from checkout_sweeper.errors import SessionsLeftOpen
from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.fake_stripe.server import QuietRequestHandler
from checkout_sweeper.fake_stripe.webhooks import new_endpoint
from checkout_sweeper.logs import setup_logging
from checkout_sweeper.settings import MAX_RPS
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.users import add_user
from checkout_sweeper.tokens import mint_token
from checkout_sweeper.vocabulary import JsonObject, RunStatus
from checkout_sweeper.web.factory import create_app

DEMO_KEY = "sk_test_demo0000000000000000"
DEMO_SECRET = "demo-secret-" + "0" * 32
DEMO_WEBHOOK_SECRET = "whsec_demo" + "0" * 22


def _received(receiver: WebhookReceiver) -> str:
    """What the app's webhook endpoint saw: each expiry's event, its signature verified."""
    verified = receiver.counts["checkout.session.expired"]
    refused = receiver.counts["refused"]
    return (
        f"webhook receiver  {receiver.url}\n"
        f"                  {verified} checkout.session.expired events verified, "
        f"{refused} refused"
    )


@click.command("demo")
@click.option("--open", "open_", default=300, show_default=True, type=click.IntRange(1, 20000))
@click.option("--complete", default=40, show_default=True, type=click.IntRange(0))
@click.option(
    "--stripe-rps", default=STRIPE_TEST_LIMIT, show_default=True, help="The fake's rate limit."
)
@click.option("--max-rps", default=MAX_RPS.default, show_default=True, help="The sweep's budget.")
def demo_command(open_: int, complete: int, stripe_rps: float, max_rps: float) -> None:
    """Run the whole flow offline: a fake Stripe, the API and two sweeps over HTTP.

    One sweep is answered at once; the other, scoped to what a CI run left (POST /v1/sweeps),
    is followed to its end; then it shows what happened."""
    console = Console()
    setup_logging(
        "WARNING", plain=True
    )  # the tables below tell the story; request logs would interleave
    with (
        tempfile.TemporaryDirectory(prefix="checkout-sweeper-demo-") as tmp,
        FakeStripeServer() as fake,
        WebhookReceiver(DEMO_WEBHOOK_SECRET) as receiver,
    ):
        hook = {"url": receiver.url, "secret": DEMO_WEBHOOK_SECRET}
        fake.state.webhook_endpoints[(False, "")] = [new_endpoint(False, hook)]
        fake.state.seed(open_=open_, complete=complete, expired=complete // 2)
        faults = {"rps": stripe_rps, "latency_ms": 40, "jitter_ms": 80}
        fake.state.faults.update({**faults, "fail_rate": 0.02, "race_rate": 0.02})
        app = _demo_app(fake.url, max_rps, tmp)
        state = app.extensions["checkout_sweeper"]
        user_id = add_user(state.db, "developer@example.com")["id"]
        token = mint_token(state.settings.jwt, str(user_id), ttl_s=600)
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = f"http://127.0.0.1:{server.port}"
        console.print(  # lines that fit 80 columns
            f"[bold]fake Stripe[/bold]  {fake.url}\n"
            f"             {open_} open, {complete} complete, {complete // 2} expired\n"
            f"             limit {stripe_rps:g} req/s, 40-120 ms latency, 2% 5xx, "
            f"2% paid mid-sweep\n"
            f"[bold]API[/bold]          {api}  user {user_id}  budget {max_rps:g} req/s",
            highlight=False,
        )
        started = time.monotonic()
        answer = _call_and_watch(console, api, token, fake, open_)
        _report(console, answer, fake.state.snapshot(), time.monotonic() - started, max_rps)
        fake.state.deliveries.idle(timeout_s=10)
        console.print(_received(receiver), highlight=False)
        ok = answer.get("status") == 200 and not answer["body"]["data"]["remaining_open_sessions"]
        fake.state.seed(open_=open_, varied=True)  # shoppers and a CI run open more
        final = _scoped_call_and_follow(console, api, token, _open_in_channel(fake, "ci"))
        server.shutdown()
        ok = ok and final.get("status") == RunStatus.SUCCEEDED
    if not ok:  # the report above says what went wrong
        raise SessionsLeftOpen("the demo's sweeps left sessions failed or open")


def _open_in_channel(fake: FakeStripeServer, channel: str) -> int:
    """How many open sessions the fake holds with ``metadata.channel`` set so (the bar's end)."""
    with fake.state.lock:
        records = fake.state.ledger(False, "").records.values()
        return sum(
            1 for r in records if r["status"] == "open" and r["metadata"].get("channel") == channel
        )


def _scoped_call_and_follow(console: Console, api: str, token: str, in_scope: int) -> JsonObject:
    """A scoped sweep (only what a CI run left behind) with ``POST /v1/sweeps``: 202 at once,
    then the sweep resource polled until it ends."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{api}/v1/sweeps"
    scope = {"metadata": {"channel": "ci"}}
    console.print(
        f"\n[bold]more open sessions, {in_scope} of them left by a CI run[/bold]\n"
        f"POST {url}\n    {json.dumps(scope)}",
        soft_wrap=True,
        highlight=False,
    )
    accepted = requests.post(url, headers=headers, json=scope, timeout=30)
    location = accepted.headers.get("Location", "")
    console.print(f"HTTP {accepted.status_code}  Location: {location}", highlight=False)
    if accepted.status_code != 202:
        return {}
    run: JsonObject = {"status": RunStatus.RUNNING}
    columns: tuple[ProgressColumn, ...] = (TextColumn("[bold]polling"), BarColumn(bar_width=10))
    columns += (TextColumn("{task.completed}/{task.total} {task.fields[split]}"),)
    columns += (TimeElapsedColumn(),)
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("poll", total=in_scope, split="handled")
        while run["status"] in (RunStatus.QUEUED, RunStatus.RUNNING):
            time.sleep(0.3)
            run = requests.get(api + location, headers=headers, timeout=30).json()["data"]
            handled = run["expired_count"] + run["already_closed_count"] + run["failed_count"]
            split = _split(run)  # the bar's words are the final line's: handled is not expired
            bar.update(task, completed=min(in_scope, handled), split=split)
    result = run.get("result") or {}
    console.print(
        f"status {run['status']}: {_split(run)}, "
        f"in scope still open {result.get('remaining_open_count', '-')}, "
        f"took {run['duration_s']} s\n"
        f"left alone (out of scope): {result.get('out_of_scope_open_count', '-')} open",
        highlight=False,
    )
    return run


def _split(run: JsonObject) -> str:
    """What the handled sessions became, in the same words on the bar and the last line."""
    return (
        f"handled: expired {run['expired_count']}, already closed "
        f"{run['already_closed_count']}, failed {run['failed_count']}"
    )


def _demo_app(stripe_url: str, max_rps: float, folder: str) -> Flask:
    env = {
        "STRIPE_API_KEY": DEMO_KEY,
        "STRIPE_API_BASE": stripe_url,
        "JWT_SECRET": DEMO_SECRET,
        "SWEEPER_MAX_RPS": str(max_rps),
        "LOG_LEVEL": "WARNING",  # the tables tell the story; request logs would interleave
        "DATABASE_URL": f"sqlite:///{Path(folder) / 'demo.sqlite3'}",
    }
    Database(env["DATABASE_URL"]).upgrade()  # the app itself does no I/O when it is built
    return create_app(env, instance_path=folder)


def _call_and_watch(
    console: Console, api: str, token: str, fake: FakeStripeServer, open_: int
) -> JsonObject:
    """One call to the endpoint, with a bar fed by the fake's own count of open sessions."""
    url = f"{api}/v1/active_checkout_sessions_and_expire_all"
    console.print(
        f"GET {url}\n    Authorization: Bearer {token[:24]}...", soft_wrap=True, highlight=False
    )
    answer: JsonObject = {}

    def call() -> None:
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        answer.update(status=response.status_code, body=response.json())

    caller = threading.Thread(target=call)
    caller.start()
    columns: tuple[ProgressColumn, ...] = (TextColumn("[bold]open sessions closing"), BarColumn())
    columns += (TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("sweep", total=open_)
        while caller.is_alive():
            bar.update(task, completed=open_ - min(open_, fake.state.snapshot()["open_total"]))
            caller.join(0.2)
        bar.update(task, completed=open_ - min(open_, fake.state.snapshot()["open_total"]))
    return answer


def _report(
    console: Console,
    answer: Mapping[str, Any],
    stats: Mapping[str, Any],
    elapsed: float,
    max_rps: float,
) -> None:
    body = answer.get("body", {})
    console.print(f"\nHTTP {answer.get('status')}  status={body.get('status')}")
    data = body.get("data")
    if not data:
        console.print(body)
        return
    result = Table(title="endpoint answer (data)")
    result.add_column("field")
    result.add_column("value", justify="right")
    for name in ("expired_count", "already_closed_count", "remaining_open_count", "duration_ms"):
        result.add_row(name, str(data[name]))
    result.add_row("failed", str(len(data["failed"])))
    result.add_row("remaining_open_sessions", str(data["remaining_open_sessions"]))
    console.print(result)
    counters = Table(title="what the fake Stripe saw")
    counters.add_column("counter")
    counters.add_column("value", justify="right")
    total = stats["requests_total"]
    rows = [
        (
            "requests (list / expire)",
            f"{stats['requests'].get('list', 0)} / {stats['requests'].get('expire', 0)}",
        ),
        ("requests per second", f"{total / elapsed:.1f} (budget {max_rps:g})"),
        ("429 rate limited", stats["rate_limited"]),
        ("5xx injected (retried)", stats["server_errors"]),
        ("paid mid-sweep (already closed)", stats["races"]),
        ("most requests in flight", stats["max_in_flight"]),
        ("sessions expired twice", stats["sessions_expired_twice"]),
        ("open sessions left", stats["open_total"]),
    ]
    for name, value in rows:
        counters.add_row(name, str(value))
    console.print(counters)

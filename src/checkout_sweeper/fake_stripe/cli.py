"""``checkout-sweeper fake-stripe``: run the local Stripe fake in the foreground."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import click

from checkout_sweeper.fake_stripe.server import FakeStripeServer
from checkout_sweeper.fake_stripe.state import FakeStripeState
from checkout_sweeper.fake_stripe.variety import described

_Command = TypeVar("_Command", bound=Callable[..., Any])


def parse_latency(value: str) -> tuple[float, float]:
    """``"150"`` is a fixed 150 ms; ``"150-400"`` is 150 ms plus up to 250 ms of jitter."""
    low, _, high = value.partition("-")
    try:
        base = float(low)
        top = float(high) if high else base
    except ValueError:
        raise click.BadParameter(f"expected MS or MIN-MAX in milliseconds, got {value!r}") from None
    if base < 0 or top < base:
        raise click.BadParameter(f"latency range must be 0 <= MIN <= MAX, got {value!r}")
    return base, top - base


def _rate(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter("must be between 0 and 1")
    return value


def _rate_option(flag: str, help_text: str) -> Callable[[_Command], _Command]:
    """A share between 0 and 1, default 0: the shape of every fault rate."""
    return click.option(
        flag, default=0.0, show_default=True, type=float, callback=_rate, help=help_text
    )


def _amount_option(flag: str, help_text: str) -> Callable[[_Command], _Command]:
    """A number from 0 up, default 0 (off): limits, bursts and spawn rates."""
    return click.option(
        flag, default=0.0, show_default=True, type=click.FloatRange(0), help=help_text
    )


@click.command("fake-stripe")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--open", "open_", default=0, show_default=True, type=click.IntRange(0))
@click.option("--complete", default=0, show_default=True, type=click.IntRange(0))
@click.option("--expired", default=0, show_default=True, type=click.IntRange(0))
@click.option("--live", is_flag=True, help="Seed live-mode sessions instead of test-mode ones.")
@click.option(
    "--account",
    default="",
    metavar="acct_...",
    help="Seed this connected account (Stripe-Account).",
)
@_amount_option(
    "--rps",
    "Requests per second per account before 429 (global-rate); 0 = unlimited.",
)
@_amount_option(
    "--operation-rps",
    "Requests per second per named operation of an account (endpoint-rate; Stripe: 25).",
)
@_amount_option(
    "--burst",
    "Limit with a token bucket of this many requests; 0 = at most RPS in any one second.",
)
@click.option(
    "--latency-ms",
    default="0",
    metavar="MS|MIN-MAX",
    show_default=True,
    help="Latency per answer: MS, or MIN-MAX for a uniform spread.",
)
@_rate_option(
    "--tail-rate",
    "Share of answers in the latency's tail, --tail-factor times slower (Stripe's heavy tail).",
)
@click.option(
    "--tail-factor",
    default=5.0,
    show_default=True,
    type=click.FloatRange(1),
    help="How many times slower an answer in the tail is.",
)
@_rate_option("--fail-rate", "Share of requests answered 500 (Stripe-Should-Retry: true).")
@_rate_option("--expire-fail-rate", "Extra share of expire calls alone answered 500.")
@_rate_option("--lost-rate", "Share of POSTs carried out whose answer is lost (500 instead).")
@_rate_option("--race-rate", "Share of expires that find the session just paid.")
@_rate_option("--lock-rate", "Share of expires answered 429 lock_timeout (object busy).")
@_amount_option(
    "--spawn-rate",
    "New open sessions created per expire call (customers arriving).",
)
@click.option(
    "--accounts",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Connected accounts of the platform, each with --open sessions and its own limit.",
)
@click.option(
    "--varied",
    is_flag=True,
    help="Seed sessions with customers, payment links and metadata (for scoped sweeps).",
)
@click.option(
    "--lifetime",
    default=86400,
    show_default=True,
    type=click.IntRange(1, 86400),
    help="Seconds a session stays open before it expires by itself (Stripe: 1800 to 86400).",
)
@click.option(
    "--restricted-lacks",
    default="account",
    show_default=True,
    help="What restricted keys (rk_...) may not do, comma-separated operations: account, "
    "accounts, list, retrieve, expire, webhook_endpoints.",
)
@click.option("--seed", default=None, type=int, help="Random seed for repeatable faults.")
def fake_stripe_command(
    host: str,
    port: int,
    open_: int,
    complete: int,
    expired: int,
    live: bool,
    account: str,
    latency_ms: str,
    accounts: int,
    varied: bool,
    lifetime: int,
    restricted_lacks: str,
    seed: int | None,
    **faults: float,  # --rps ... --spawn-rate: the fault settings of the same names
) -> None:
    """Serve a stateful fake of Stripe's Checkout Sessions API on HOST:PORT."""
    base, jitter = parse_latency(latency_ms)
    state = FakeStripeState(seed=seed)
    state.policy.update({"lifetime_s": lifetime, "restricted_lacks": restricted_lacks.split(",")})
    state.faults.update({**faults, "latency_ms": base, "jitter_ms": jitter})
    connected = state.connect_accounts(accounts, open_=open_, varied=varied)
    state.seed(
        open_=0 if accounts else open_, complete=complete, expired=expired, livemode=live,
        account=account, varied=varied,
    )  # fmt: skip
    server = FakeStripeServer(state, host=host, port=port)
    platform_open = 0 if accounts else open_
    _announce(server.url, f"{platform_open} open, {complete} complete, {expired} expired")
    if varied:
        click.echo(f"seeded with {described()}", err=True)
    if connected:
        listed = " ".join(connected)
        click.echo(f"connected accounts ({open_} open sessions each): {listed}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _announce(url: str, seeded: str) -> None:
    click.echo(
        f"fake Stripe on {url} ({seeded}); admin at {url}/_admin/stats; Ctrl-C stops", err=True
    )

"""Helpers shared by the benchmarks: a fake Stripe in its own process, and a plain table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from checkout_sweeper.fake_stripe.process import fake_stripe_process


@contextlib.contextmanager
def running_fake(*extra: str, open_: int = 0, complete: int = 0) -> Iterator[str]:
    """The fake in a child process, seeded, with repeatable faults."""
    seed = ("--open", str(open_), "--complete", str(complete), "--seed", "7")
    with fake_stripe_process(*seed, *extra) as url:
        yield url


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, so results paste straight into the README."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))

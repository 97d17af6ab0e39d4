"""``sweep`` pushes its metrics to a Pushgateway when ``PROMETHEUS_PUSHGATEWAY`` is set: a
command ends before any scrape could reach it."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, push_to_gateway

log = logging.getLogger("checkout_sweeper.cli")


def push_metrics(gateway: str | None) -> None:
    if not gateway:
        return
    try:
        push_to_gateway(gateway, job="checkout-sweeper", registry=REGISTRY, timeout=5)
    except Exception as err:  # the sweep is done and recorded; only the push failed
        log.warning("could not push metrics to %s: %s", gateway, err)

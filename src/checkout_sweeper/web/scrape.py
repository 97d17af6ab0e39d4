"""``/metrics``: Prometheus text format, for loopback callers, or for anyone with
``METRICS_TOKEN`` as a Bearer token when it is set."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import Blueprint, Response, request
from redis.exceptions import RedisError

from checkout_sweeper.errors import MetricsLoopbackOnly, MetricsTokenRequired
from checkout_sweeper.metrics import QUEUE_DEPTH, exposition
from checkout_sweeper.runs.queue.producer import queue_depth
from checkout_sweeper.web.state import app_state

log = logging.getLogger("checkout_sweeper.api")
bp = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _allowed() -> None:
    token = app_state().settings.metrics_token
    if token is not None:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            raise MetricsTokenRequired("/metrics needs 'Authorization: Bearer <METRICS_TOKEN>'.")
        return
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    # A loopback address with X-Forwarded-For is a proxy on this host speaking for someone
    # else, unless the proxy is trusted (TRUSTED_PROXY_COUNT: then remote_addr is the client).
    proxied = "X-Forwarded-For" in request.headers and not app_state().settings.trusted_proxy_count
    if not loopback or proxied:
        raise MetricsLoopbackOnly(
            "/metrics answers loopback callers only; set METRICS_TOKEN to open it."
        )


@bp.get("/metrics")
def metrics() -> Response:
    _allowed()
    _read_queue_depth()
    return Response(exposition(), mimetype=None, content_type=CONTENT_TYPE)


def _read_queue_depth() -> None:
    """The queue's depth as this scrape sees it; a Redis out of reach leaves the last value
    (logged: the scrape itself still answers)."""
    try:
        QUEUE_DEPTH.set(queue_depth(app_state().broker))
    except RedisError as err:
        log.warning("queue depth not read: %s", err)

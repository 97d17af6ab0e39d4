"""Prometheus metrics: what the service does, for dashboards and alerts.

Import this module only from code that runs in a server's workers or in a command, never from
what ``serve`` itself loads before it sets ``PROMETHEUS_MULTIPROC_DIR``: prometheus-client
chooses where values live when it is first imported, and workers forked from a process that
chose memory would write nothing for ``/metrics`` to add up.

Under gunicorn, ``serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, so each
worker writes its samples there and ``/metrics`` adds them up across workers (prometheus-client's
multiprocess mode); a worker that exits is marked dead by the ``child_exit`` hook. Label values
are bounded: route templates, operations, outcome and result names.
"""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from checkout_sweeper.settings import METRICS_DIR

PREFIX = "checkout_sweeper"
# Label values come from closed sets only: a client chooses the method it sends, and one new
# label value per request would grow the exposition (and the multiprocess files) without bound.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method, or ``other`` for anything outside the standard set."""
    return method if method in HTTP_METHODS else "other"


HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds", "Time to answer.", ["route", "method"]
)
SWEEPS_STARTED = Counter(f"{PREFIX}_sweeps_started_total", "Sweeps started.", ["trigger"])
SWEEPS_FINISHED = Counter(
    f"{PREFIX}_sweeps_finished_total", "Sweeps ended, by how.", ["trigger", "outcome"]
)
SWEEP_SECONDS = Histogram(
    f"{PREFIX}_sweep_duration_seconds",
    "How long sweeps took.",
    ["trigger"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
SWEEPS_RUNNING = Gauge(
    f"{PREFIX}_sweeps_running", "Sweeps running now.", multiprocess_mode="livesum"
)
SESSIONS = Counter(
    f"{PREFIX}_sessions_total", "Checkout Sessions handled, by outcome.", ["outcome"]
)
STRIPE_REQUESTS = Counter(
    f"{PREFIX}_stripe_requests_total", "Requests sent to Stripe.", ["operation", "result"]
)
STRIPE_RETRIES = Counter(f"{PREFIX}_stripe_retries_total", "Stripe requests sent again.")
PACING_RATE = Gauge(
    f"{PREFIX}_pacing_rate_requests_per_second",
    "The pacing rate in force in a running sweep.",
    multiprocess_mode="livemax",
)
POOL_THREADS = Gauge(
    f"{PREFIX}_expire_pool_threads",
    "Expire threads of the running sweeps: each pool sizes itself to rate x latency.",
    multiprocess_mode="livesum",
)
IN_FLIGHT = Gauge(
    f"{PREFIX}_stripe_in_flight",
    "Expires of the running sweeps under way: waiting for the pacing or sent to Stripe.",
    multiprocess_mode="livesum",
)
AUDIT_PENDING = Gauge(
    f"{PREFIX}_audit_pending_outcomes",
    "Outcomes in the journal that have not reached the database yet.",
    multiprocess_mode="livesum",
)

QUEUE_EVENTS = Counter(
    f"{PREFIX}_queue_sweeps_total",
    "Sweeps through the job queue: queued, taken, resumed (taken again after a worker died or "
    "stopped), handed_back, dropped (a message for a sweep no longer waiting), given_up (the "
    "queue stopped trying: the sweep ends failed).",
    ["event"],
)
PLATFORM_BUDGET_UNAVAILABLE = Counter(
    f"{PREFIX}_platform_budget_unavailable_total",
    "Requests sent without the platform budget's say (its storage could not be reached).",
)
SCHEDULED_SLOTS = Counter(
    f"{PREFIX}_scheduled_slots_total",
    "Slots of schedules this worker claimed, by what came of them.",
    ["result"],  # started, not_started, error (looking for due slots failed)
)
SWEEPS_CANCELED = Counter(
    f"{PREFIX}_sweeps_canceled_total", "Cancels asked of a queued or running sweep.", ["door"]
)
QUEUE_DEPTH = Gauge(
    f"{PREFIX}_queue_depth",
    "Sweeps waiting in the job queue for a worker (read when scraped).",
    multiprocess_mode="livemax",
)


def exposition() -> bytes:
    """The text format, added up across gunicorn workers when they share a directory."""
    if METRICS_DIR.read():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def result_class(status: int | None, rate_limited: bool = False) -> str:
    """A bounded label for a Stripe answer."""
    if rate_limited or status == 429:
        return "rate_limited"
    if status is None:
        return "network_error"
    if status < 400:
        return "ok"
    return "client_error" if status < 500 else "server_error"

"""Gunicorn settings for ``checkout-sweeper serve`` (also usable as ``gunicorn -c``).

Threaded workers (gthread) keep answering health checks and the prompt 409 while one thread runs
a long sweep; the timeout and the graceful timeout are long enough for a sweep of thousands of
sessions at Stripe's pace to finish when the server is told to stop.
"""

from __future__ import annotations

from typing import Protocol

from checkout_sweeper.logs import gunicorn_log_config
from checkout_sweeper.settings import METRICS_DIR, ServerSettings

_server = ServerSettings.from_env()
bind = _server.bind
workers = _server.workers  # more only with a shared limiter store
worker_class = "gthread"
threads = _server.threads
timeout = _server.timeout_s
graceful_timeout = _server.graceful_timeout_s
keepalive = 5
# JWTs with many claims exceed gunicorn's default 8,190-byte header field: allow a 16 KB token
# after "Authorization: Bearer " (a header over this gets a JSON 431 from gunicorn itself).
limit_request_field_size = 16 * 1024 + 1024
# No control socket (gunicorn 25.1+): its default path is one per user, so a second server
# would take it over and remove it when it stops; nothing here uses gunicornc.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
# Every line gunicorn writes is one JSON object with the app's keys and timestamp format.
logconfig_dict = gunicorn_log_config(_server.log_level)


def on_starting(server: object) -> None:
    """Errors gunicorn answers itself come in the JSON envelope too."""
    from checkout_sweeper.web.error_pages import install

    install()


def worker_exit(server: object, worker: object) -> None:
    """A stopping worker stops the sweeps its in-process queue runs: they stop dispatching,
    record what was done and end ``interrupted``, within the graceful timeout."""
    from checkout_sweeper.runs.queue.pool import stop_local_pools

    stop_local_pools(timeout_s=graceful_timeout)


class _Worker(Protocol):
    """What the hooks read of gunicorn's (untyped) worker."""

    pid: int


def child_exit(server: object, worker: _Worker) -> None:
    """A dead worker's live gauges leave /metrics (prometheus-client multiprocess mode)."""
    if METRICS_DIR.read():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

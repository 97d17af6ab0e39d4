"""Gunicorn settings for ``checkout-sweeper serve`` (also usable as ``gunicorn -c``).

Threaded workers (gthread) keep answering health checks and the prompt 409 while one thread runs
a long sweep; the timeout and the graceful timeout are long enough for a sweep of thousands of
sessions at Stripe's pace to finish when the server is told to stop.
"""

from __future__ import annotations

import json
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))  # more only with a shared limiter store
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "900"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "600"))
keepalive = 5
accesslog = "-"
errorlog = "-"
access_log_format = json.dumps(
    {
        "ts": "%(t)s",
        "logger": "gunicorn.access",
        "ip": "%(h)s",
        "method": "%(m)s",
        "path": "%(U)s",
        "status": "%(s)s",
        "bytes": "%(B)s",
        "duration_us": "%(D)s",
        "user_agent": "%(a)s",
    }
)

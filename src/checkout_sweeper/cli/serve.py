"""``serve``: the API under gunicorn, with settings checked and the schema migrated first."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from checkout_sweeper.api_keys import is_live_key
from checkout_sweeper.cli.context import command_env, load_settings, open_database
from checkout_sweeper.errors import ConfigError, UsageRefused
from checkout_sweeper.runs.quota import SWEEPS, SWEEPS_PER_HOUR
from checkout_sweeper.settings import METRICS_DIR, masked


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """Gunicorn driven from Python: our config module plus the command's options."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        # reads the environment: imported only once settings are checked
        from checkout_sweeper.web import gunicorn_conf

        for name in dir(gunicorn_conf):
            if name in self.cfg.settings and not name.startswith("_"):
                self.cfg.set(name, getattr(gunicorn_conf, name))
        for name, value in self._options.items():
            if value is not None:
                self.cfg.set(name, value)

    def load(self) -> Any:
        from checkout_sweeper.web.factory import create_app

        return create_app(command_env())


@click.command("serve")
@click.option("--host", default=None, help="Default: the host of BIND (127.0.0.1).")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Default: the port of BIND (8000)."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1),
    help="Processes. Default: WEB_CONCURRENCY, else 1. More than 1 needs redis:// rate limits.",
)
def serve_command(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API with gunicorn."""
    with _metrics_folder():
        _serve(host, port, workers)


@contextlib.contextmanager
def _metrics_folder() -> Iterator[None]:
    """Where the workers write their metrics, so /metrics adds them up; made fresh for this
    server and removed when it stops (unless PROMETHEUS_MULTIPROC_DIR was given)."""
    if METRICS_DIR.read():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="checkout-sweeper-metrics-") as folder:
        os.environ[METRICS_DIR.env] = folder
        try:
            yield
        finally:
            del os.environ[METRICS_DIR.env]


def _serve(host: str | None, port: int | None, workers: int | None) -> None:
    settings = load_settings()
    settings.check_for_api()
    workers = workers or settings.server.workers
    if workers > 1 and settings.ratelimit_storage_uri.startswith("memory://"):
        raise ConfigError(
            f"{workers} workers with RATELIMIT_STORAGE_URI=memory:// would "
            f"count the {SWEEPS.per} limit in each process "
            f"({SWEEPS_PER_HOUR * workers} per hour in all); "
            "set RATELIMIT_STORAGE_URI=redis://... or serve with --workers 1"
        )
    # the schema and the journals left on disk, once here, before gunicorn forks its workers
    open_database(settings).dispose()
    if is_live_key(settings.stripe_api_key or "") and not settings.allow_live_mode:
        click.echo(
            "note: live-mode key without SWEEPER_ALLOW_LIVE_MODE; sweeps answer 403", err=True
        )
    default_host, _, default_port = settings.server.bind.rpartition(":")
    bind = f"{host or default_host}:{port or default_port}"
    _refuse_a_busy_address(host or default_host, int(port or default_port))
    _warn_if_limits_unreachable(settings.ratelimit_storage_uri)
    _Gunicorn({"bind": bind, "workers": workers}).run()


def _refuse_a_busy_address(host: str, port: int) -> None:
    """One line and exit 2 at once, instead of gunicorn retrying for seconds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise UsageRefused(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another --port"
            ) from None


def _warn_if_limits_unreachable(storage_uri: str) -> None:
    """The endpoint fails closed (503) while the limits' storage is down: say so at start."""
    if storage_uri.startswith("memory://"):
        return
    import redis

    try:
        client = redis.Redis.from_url(storage_uri, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as err:
        click.echo(
            f"warning: RATELIMIT_STORAGE_URI {masked(storage_uri)} cannot be reached ({err}); "
            "the endpoint answers 503 until it can",
            err=True,
        )

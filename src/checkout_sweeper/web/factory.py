"""``create_app()``: settings, database, limiter, proxy handling, blueprints, error handlers."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from checkout_sweeper.logs import setup_logging
from checkout_sweeper.metrics import HTTP_REQUESTS, HTTP_SECONDS, method_label
from checkout_sweeper.runs.queue.producer import make_broker
from checkout_sweeper.runs.quota import storage_options
from checkout_sweeper.settings import Settings, default_instance_path
from checkout_sweeper.store.database import DEADLINE_S, Database
from checkout_sweeper.web.endpoint import bp as v1_bp
from checkout_sweeper.web.envelopes import register_error_handlers
from checkout_sweeper.web.health import bp as health_bp
from checkout_sweeper.web.openapi.ui import bp as docs_bp
from checkout_sweeper.web.schedules import bp as schedules_bp
from checkout_sweeper.web.scrape import bp as metrics_bp
from checkout_sweeper.web.state import EXTENSION_KEY, AppState
from checkout_sweeper.web.sweeps import bp as sweeps_bp

request_log = logging.getLogger("checkout_sweeper.request")


def _user_key() -> str:
    return f"user:{getattr(g, 'user_id', None) or request.remote_addr}"


def create_app(
    env: Mapping[str, str] | None = None,
    *,
    instance_path: str | Path | None = None,
) -> Flask:
    """Build the service from ``env`` (default: ``os.environ``); bad settings raise ConfigError.
    It does no I/O: the schema is brought up to date and the journals left on disk imported
    by ``serve`` (or ``checkout-sweeper db upgrade``) before any app is built."""
    app = Flask(__name__, instance_path=str(instance_path or default_instance_path(env)))
    # /v1//sweeps is no path of ours: a JSON 404, not werkzeug's HTML 308 to /v1/sweeps
    app.url_map.merge_slashes = False
    settings = Settings.from_env(env, instance_path=Path(app.instance_path))
    setup_logging(settings.server.log_level)
    settings.check_for_api()
    db = Database(settings.database_url)
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_STORAGE_OPTIONS=storage_options(settings.ratelimit_storage_uri),
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=False,
        RATELIMIT_KEY_PREFIX=settings.ratelimit_key_prefix,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it; the base does not
    _log_requests(app)  # before the limiter: its after_request hook then runs after the limiter's
    limiter = Limiter(key_func=_user_key, app=app)
    limiter.exempt(health_bp)
    limiter.exempt(metrics_bp)
    broker = make_broker(settings)
    app.extensions[EXTENSION_KEY] = AppState(settings, db, limiter, broker)
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # werkzeug's documented way to wrap it
            app.wsgi_app,
            x_for=settings.trusted_proxy_count,
            x_proto=settings.trusted_proxy_count,
            x_host=settings.trusted_proxy_count,
        )
    register_error_handlers(app)
    _bound_database_work(app, db)
    app.register_blueprint(v1_bp, url_prefix=settings.api_prefix or None)
    app.register_blueprint(sweeps_bp, url_prefix=settings.api_prefix or None)
    app.register_blueprint(schedules_bp, url_prefix=settings.api_prefix or None)
    app.register_blueprint(health_bp)
    app.register_blueprint(docs_bp)
    app.register_blueprint(metrics_bp)
    return app


def _bound_database_work(app: Flask, db: Database) -> None:
    """Every request's database work ends within ``DEADLINE_S``, or the request answers 503
    and starts nothing (a sweep that runs in the request disarms it first): the store raises
    ``DatabaseUnavailable``, answered as every error of the tree is."""

    @app.before_request
    def arm() -> None:
        db.deadlines.arm(DEADLINE_S)

    @app.teardown_request
    def disarm(_: BaseException | None) -> None:
        db.deadlines.disarm()


def _log_requests(app: Flask) -> None:
    @app.before_request
    def start_clock() -> None:
        g.started = time.monotonic()

    @app.after_request
    def finish(response: Response) -> Response:
        if request.blueprint in ("v1", "sweeps"):
            response.headers["Cache-Control"] = "no-store"
        if response.status_code < 300:  # what is left once this call spent its share
            response.headers.update(g.get("quota_headers", {}))
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)  # the limiter adds it to every answer
        duration_ms = int((time.monotonic() - g.get("started", time.monotonic())) * 1000)
        fields: dict[str, object] = {
            "ip": request.remote_addr,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "user_id": getattr(g, "user_id", None),
            "duration_ms": duration_ms,
        }
        fields.update(getattr(g, "sweep_counts", {}))
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = method_label(request.method)
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_SECONDS.labels(route, method).observe(duration_ms / 1000)
        request_log.info(
            "%s %s %s", request.method, request.path, response.status_code, extra={"fields": fields}
        )
        return response

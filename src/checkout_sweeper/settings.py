"""Settings from the environment, read and checked once at start-up.

Every variable the project reads is declared once in ``VARIABLES`` (name, default, meaning);
``Settings.from_env`` reads them, and a test checks the README's configuration table against
that declaration. A missing or contradictory setting stops the service with a message that
names the variable, instead of surfacing as a 500 on the first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from checkout_sweeper import defaults
from checkout_sweeper.errors import ConfigError
from checkout_sweeper.stripe_keys import key_problem

__all__ = ["VARIABLES", "ConfigError", "ServerSettings", "Settings", "Variable"]

HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
PUBLIC_KEY_ALGORITHMS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
APP_NAME = "checkout-sweeper"
RATELIMIT_SCHEMES = ("memory://", "redis://", "rediss://", "redis+sentinel://")
DEFAULT_JWT_ALGORITHMS = "HS256"
DEFAULT_USER_ID_CLAIM = "sub"
DEFAULT_RATELIMIT_STORAGE = "memory://"
DEFAULT_API_PREFIX = "/v1"


@dataclass(frozen=True)
class ServerSettings:
    """How ``serve`` runs gunicorn, and how loud the logs are."""

    bind: str = "127.0.0.1:8000"
    workers: int = 1
    threads: int = 16  # health checks keep a thread while requests wait on a dependency
    timeout_s: int = 900
    graceful_timeout_s: int = 600
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        level = (env.get("LOG_LEVEL") or cls.log_level).strip().upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        return cls(
            bind=env.get("BIND") or cls.bind,
            workers=_whole(env, "WEB_CONCURRENCY", cls.workers, minimum=1),
            threads=_whole(env, "GUNICORN_THREADS", cls.threads, minimum=1),
            timeout_s=_whole(env, "GUNICORN_TIMEOUT", cls.timeout_s, minimum=1),
            graceful_timeout_s=_whole(
                env, "GUNICORN_GRACEFUL_TIMEOUT", cls.graceful_timeout_s, minimum=1
            ),
            log_level=level,
        )


@dataclass(frozen=True)
class Variable:
    """One environment variable, as the README's configuration table shows it."""

    name: str
    default: str
    meaning: str


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "STRIPE_API_KEY",
        "none",
        "secret (`sk_`) or restricted (`rk_`) key; required to serve or sweep",
    ),
    Variable("STRIPE_API_BASE", "Stripe's", "point the SDK elsewhere (the fake, stripe-mock)"),
    Variable(
        "STRIPE_TIMEOUT_S",
        f"{defaults.STRIPE_TIMEOUT_S:g}",
        "seconds before a Stripe request that gets no answer is given up (and retried)",
    ),
    Variable("STRIPE_ACCOUNT", "none", "sweep a connected account (`Stripe-Account` header)"),
    Variable(
        "DATABASE_URL",
        "SQLite in the data folder",
        "SQLAlchemy URL; `postgresql+psycopg://...` in production",
    ),
    Variable(
        "SWEEPER_INSTANCE_PATH",
        "`~/.local/share/checkout-sweeper`",
        "the data folder: the default SQLite file and the audit journals (platformdirs' user "
        "data directory, whatever the current directory)",
    ),
    Variable(
        "JWT_SECRET / JWT_PUBLIC_KEY",
        "none",
        "HS* secret, or a PEM public key for RS*/ES*/PS*/EdDSA",
    ),
    Variable(
        "JWT_ALGORITHMS",
        f"`{DEFAULT_JWT_ALGORITHMS}`",
        "comma-separated; HMAC and public-key ones never mixed",
    ),
    Variable("JWT_AUDIENCE, JWT_ISSUER", "unset", "required and checked when set"),
    Variable(
        "JWT_USER_ID_CLAIM", f"`{DEFAULT_USER_ID_CLAIM}`", "claim holding the user id (a string)"
    ),
    Variable(
        "JWT_LEEWAY_S",
        f"{defaults.JWT_LEEWAY_S}",
        "seconds of clock skew allowed on `exp`, `nbf` and `iat`",
    ),
    Variable(
        "RATELIMIT_STORAGE_URI",
        f"`{DEFAULT_RATELIMIT_STORAGE}`",
        "`redis://...` when more than one process serves",
    ),
    Variable("SWEEPER_ALLOW_LIVE_MODE", "false", "allow sweeps with a live-mode key"),
    Variable(
        "SWEEPER_MAX_RPS",
        f"{defaults.MAX_RPS:g}",
        "Stripe requests per second one sweep may use (lists included); `auto` starts at "
        "Stripe's documented limit (25 test, 100 live) and settles just under the real one",
    ),
    Variable("SWEEPER_CONCURRENCY", f"{defaults.CONCURRENCY}", "requests in flight at once"),
    Variable(
        "SWEEPER_LEASE_TTL",
        f"{defaults.LEASE_TTL_S:g}",
        "seconds before a dead sweeper's account lease lapses",
    ),
    Variable(
        "SWEEPER_AUDIT_GRACE_S",
        f"{defaults.AUDIT_GRACE_S:g}",
        "how long a finished sweep waits for an unreachable database before leaving its journal",
    ),
    Variable(
        "SWEEPER_API_PREFIX", f"`{DEFAULT_API_PREFIX}`", "where the endpoint's blueprint is mounted"
    ),
    Variable(
        "TRUSTED_PROXY_COUNT",
        "0",
        "proxies in front that append `X-Forwarded-For` (werkzeug ProxyFix)",
    ),
    Variable(
        "METRICS_TOKEN",
        "unset",
        "Bearer token required on `/metrics`; unset: `/metrics` answers loopback callers only",
    ),
    Variable(
        "PROMETHEUS_PUSHGATEWAY",
        "unset",
        "`sweep` pushes its metrics to this Pushgateway URL when it ends",
    ),
    Variable(
        "BIND", f"`{ServerSettings.bind}`", "address gunicorn listens on (`serve --host/--port`)"
    ),
    Variable(
        "WEB_CONCURRENCY",
        f"{ServerSettings.workers}",
        "gunicorn workers for `serve` (or `--workers`); more than 1 needs `redis://` rate limits",
    ),
    Variable(
        "GUNICORN_THREADS", f"{ServerSettings.threads}", "threads per gunicorn worker (gthread)"
    ),
    Variable(
        "GUNICORN_TIMEOUT",
        f"{ServerSettings.timeout_s}",
        "seconds before gunicorn restarts a silent worker",
    ),
    Variable(
        "GUNICORN_GRACEFUL_TIMEOUT",
        f"{ServerSettings.graceful_timeout_s}",
        "seconds a stopping worker has to finish a running sweep",
    ),
    Variable(
        "LOG_LEVEL",
        f"`{ServerSettings.log_level}`",
        "level of the JSON log lines of `serve` (commands log warnings only unless it is set)",
    ),
)


def configuration_table() -> str:
    """The README's configuration table, rendered from ``VARIABLES``."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable in VARIABLES:
        name = re.sub(r"([A-Z][A-Z_]+[A-Z])", r"`\1`", variable.name)
        rows.append(f"| {name} | {variable.default} | {variable.meaning} |")
    return "\n".join(rows)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, what: str = "a number"
) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def parse_max_rps(raw: str | None, name: str = "SWEEPER_MAX_RPS") -> float | None:
    """A budget in requests per second (at least 0.1), or ``auto`` (None)."""
    if raw is None or not raw.strip():
        return defaults.MAX_RPS
    if raw.strip().lower() == "auto":
        return None
    what = "requests per second (a number) or 'auto'"
    return _number({name: raw}, name, defaults.MAX_RPS, minimum=0.1, what=what)


def _whole(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    value = _number(env, name, default, minimum=minimum)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {env.get(name)!r}")
    return int(value)


def default_instance_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded SQLite database and the audit journals live: ``SWEEPER_INSTANCE_PATH``,
    else the user's data directory (``~/.local/share/checkout-sweeper`` on Linux), never the
    current directory, so every command sees the same users, history and leases."""
    env = os.environ if env is None else env
    chosen = env.get("SWEEPER_INSTANCE_PATH") or platformdirs.user_data_path(APP_NAME)
    return Path(chosen).expanduser().resolve()


def default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'checkout_sweeper.sqlite3'}"


@dataclass(frozen=True)
class JwtSettings:
    key: str | None
    algorithms: tuple[str, ...]
    audience: str | None
    issuer: str | None
    user_id_claim: str
    leeway_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JwtSettings:
        algorithms = tuple(
            a.strip()
            for a in env.get("JWT_ALGORITHMS", DEFAULT_JWT_ALGORITHMS).split(",")
            if a.strip()
        )
        unknown = [a for a in algorithms if a not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
        if not algorithms or unknown:
            raise ConfigError(f"JWT_ALGORITHMS has unsupported algorithm(s): {unknown or '(none)'}")
        return cls(
            key=_jwt_key(env, algorithms),
            algorithms=algorithms,
            audience=env.get("JWT_AUDIENCE") or None,
            issuer=env.get("JWT_ISSUER") or None,
            user_id_claim=env.get("JWT_USER_ID_CLAIM") or DEFAULT_USER_ID_CLAIM,
            leeway_s=_number(env, "JWT_LEEWAY_S", defaults.JWT_LEEWAY_S, minimum=0),
        )


def _jwt_key(env: Mapping[str, str], algorithms: tuple[str, ...]) -> str | None:
    """JWT_SECRET for HS*, JWT_PUBLIC_KEY for the others; never both, never mixed."""
    hmac = set(algorithms) & HMAC_ALGORITHMS
    if hmac and set(algorithms) - HMAC_ALGORITHMS:
        raise ConfigError("JWT_ALGORITHMS must not mix HMAC (HS*) and public-key algorithms")
    secret, public_key = env.get("JWT_SECRET") or None, env.get("JWT_PUBLIC_KEY") or None
    if secret and public_key:
        raise ConfigError("set JWT_SECRET or JWT_PUBLIC_KEY, not both")
    if hmac and public_key:
        raise ConfigError("JWT_PUBLIC_KEY is set but JWT_ALGORITHMS are HMAC (HS*) ones")
    if not hmac and secret:
        raise ConfigError(f"JWT_SECRET is set but JWT_ALGORITHMS are {', '.join(algorithms)}")
    if public_key and "BEGIN" not in public_key:
        raise ConfigError("JWT_PUBLIC_KEY must be a PEM-encoded public key")
    return secret or public_key


def _stripe_key(env: Mapping[str, str]) -> str | None:
    """Unset or empty is allowed here (commands that need no Stripe say so when they run);
    anything else must be a key."""
    key = env.get("STRIPE_API_KEY")
    if key is None or not key.strip():
        return key
    problem = key_problem(key)
    if problem is not None:
        raise ConfigError(problem)
    return key


def _stripe_base(env: Mapping[str, str]) -> str | None:
    """``STRIPE_API_BASE`` without a trailing ``/`` or ``/v1`` (the SDK adds ``/v1``)."""
    raw = (env.get("STRIPE_API_BASE") or "").strip()
    if not raw:
        return None
    base = raw.rstrip("/").removesuffix("/v1").rstrip("/")
    parsed = urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"STRIPE_API_BASE must be an http(s) URL with a host, like "
            f"http://127.0.0.1:12111; got {raw!r}"
        )
    return base


def _ratelimit_storage(env: Mapping[str, str]) -> str:
    storage = env.get("RATELIMIT_STORAGE_URI") or DEFAULT_RATELIMIT_STORAGE
    if not storage.startswith(RATELIMIT_SCHEMES):
        raise ConfigError(
            f"RATELIMIT_STORAGE_URI must be memory:// or redis://..., got {storage!r}"
        )
    return storage


@dataclass(frozen=True)
class Settings:
    stripe_api_key: str | None
    stripe_api_base: str | None
    stripe_account: str | None
    stripe_timeout_s: float
    database_url: str
    jwt: JwtSettings
    ratelimit_storage_uri: str
    allow_live_mode: bool
    max_rps: float | None  # None: auto, from the mode's documented limit down to what works
    concurrency: int
    trusted_proxy_count: int
    server: ServerSettings
    journal_dir: Path
    metrics_token: str | None = None
    pushgateway: str | None = None
    lease_ttl_s: float = defaults.LEASE_TTL_S
    audit_grace_s: float = defaults.AUDIT_GRACE_S
    api_prefix: str = DEFAULT_API_PREFIX

    def check_for_api(self) -> None:
        """What serving the endpoint needs on top of the database: a Stripe key and a JWT key."""
        problem = key_problem(self.stripe_api_key)
        if problem is not None:
            raise ConfigError(problem)
        if not self.jwt.key:
            which = "JWT_SECRET" if self.jwt.algorithms[0].startswith("HS") else "JWT_PUBLIC_KEY"
            raise ConfigError(f"{which} is required for {', '.join(self.jwt.algorithms)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, instance_path: Path) -> Settings:
        env = os.environ if env is None else env
        prefix = "/" + env.get("SWEEPER_API_PREFIX", DEFAULT_API_PREFIX).strip("/")
        return cls(
            stripe_api_key=_stripe_key(env),
            stripe_api_base=_stripe_base(env),
            stripe_account=env.get("STRIPE_ACCOUNT") or None,
            stripe_timeout_s=_number(
                env, "STRIPE_TIMEOUT_S", defaults.STRIPE_TIMEOUT_S, minimum=0.1
            ),
            database_url=env.get("DATABASE_URL") or default_database_url(instance_path),
            jwt=JwtSettings.from_env(env),
            ratelimit_storage_uri=_ratelimit_storage(env),
            allow_live_mode=_flag(env, "SWEEPER_ALLOW_LIVE_MODE"),
            max_rps=parse_max_rps(env.get("SWEEPER_MAX_RPS")),
            concurrency=_whole(env, "SWEEPER_CONCURRENCY", defaults.CONCURRENCY, minimum=1),
            trusted_proxy_count=_whole(env, "TRUSTED_PROXY_COUNT", 0, minimum=0),
            server=ServerSettings.from_env(env),
            journal_dir=instance_path / "journal",
            metrics_token=env.get("METRICS_TOKEN") or None,
            pushgateway=env.get("PROMETHEUS_PUSHGATEWAY") or None,
            lease_ttl_s=_number(env, "SWEEPER_LEASE_TTL", defaults.LEASE_TTL_S, minimum=1.0),
            audit_grace_s=_number(
                env, "SWEEPER_AUDIT_GRACE_S", defaults.AUDIT_GRACE_S, minimum=0.0
            ),
            api_prefix="" if prefix == "/" else prefix,
        )

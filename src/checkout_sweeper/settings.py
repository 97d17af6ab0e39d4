"""Every setting, declared once: its variable, default, parser and meaning, as data.

``SETTINGS`` is the one list (in the order the README's configuration table shows it, which
is generated from it). ``Settings.from_env`` reads each through its declaration, so a name or
a default is never written twice; the engine's option defaults, the command line's help, the
demo and the docs read the same declarations. A missing or contradictory setting stops the
service with a message that names the variable, instead of a 500 on the first request.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import platformdirs

from checkout_sweeper.api_keys import key_problem
from checkout_sweeper.errors import ConfigError

__all__ = ["SETTINGS", "ConfigError", "ServerSettings", "Setting", "Settings"]

T = TypeVar("T")
HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
PUBLIC_KEY_ALGORITHMS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
APP_NAME = "checkout-sweeper"
RATELIMIT_SCHEMES = ("memory://", "redis://", "rediss://", "redis+sentinel://")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: ``read`` gives its value, or ``default`` when it is unset."""

    env: str
    default: T
    parse: Callable[[str, str], T]  # (variable, raw text) -> value; raises ConfigError
    help: str
    shown: str | None = None  # the default as the README says it, when not the value itself
    blank_is_unset: bool = True

    def read(self, env: Mapping[str, str] | None = None) -> T:
        raw = (os.environ if env is None else env).get(self.env)
        if raw is None or (self.blank_is_unset and not raw.strip()):
            return self.default
        return self.parse(self.env, raw)

    @property
    def shown_default(self) -> str:
        """The default in the README's words."""
        if self.shown is not None:
            return self.shown
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, float):
            return f"{self.default:g}"
        if isinstance(self.default, str):
            return f"`{self.default}`"
        if isinstance(self.default, tuple):
            return f"`{','.join(map(str, self.default))}`"
        return str(self.default)


# parsers: each names the variable in its refusal --------------------------------------------
def text(name: str, raw: str) -> str:
    return raw


def number(minimum: float, maximum: float, what: str = "a number") -> Callable[[str, str], float]:
    """A finite number from ``minimum`` to ``maximum`` (``nan`` and ``inf`` pass no check
    downstream: they are refused here)."""

    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name} must be from {minimum:g} to {maximum:g}, got {raw!r}")
        return value

    return parse


def whole(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        value = number(minimum, maximum)(name, raw)
        if value != int(value):
            raise ConfigError(f"{name} must be a whole number, got {raw!r}")
        return int(value)

    return parse


def flag(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def budget(name: str, raw: str) -> float | None:
    """Requests per second (at least 0.1), or ``auto`` (None)."""
    if raw.strip().lower() == "auto":
        return None
    return number(0.1, 10_000, "requests per second (a number) or 'auto'")(name, raw)


def log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def stripe_key(name: str, raw: str) -> str | None:
    """An empty key is let through: commands that need no Stripe say so when they run."""
    if not raw.strip():
        return raw
    problem = key_problem(raw)
    if problem is not None:
        raise ConfigError(problem)
    return raw


def stripe_base(name: str, raw: str) -> str | None:
    """Without a trailing ``/`` or ``/v1`` (the SDK adds ``/v1``)."""
    base = raw.strip().rstrip("/").removesuffix("/v1").rstrip("/")
    parsed = urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"{name} must be an http(s) URL with a host, like http://127.0.0.1:12111; got {raw!r}"
        )
    return base


SECRET_PARAMETERS = re.compile(r"(pass(word|wd)?|pwd|secret|token|key)", re.IGNORECASE)


def masked(url: str) -> str:
    """``url`` fit for a message or a log: its password, and any query parameter that names a
    secret (``?password=``, ``sslpassword``, ``token``), shown as ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a value that is not a URL)"
    if password is not None:
        url = url.replace(f":{password}@", ":***@", 1)
    if parts.query:
        query = "&".join(
            f"{key}=***" if sep and SECRET_PARAMETERS.search(key) else key + sep + value
            for key, sep, value in (pair.partition("=") for pair in parts.query.split("&"))
        )
        url = url.replace(f"?{parts.query}", f"?{query}", 1)
    return url


DATABASE_SCHEMES = ("sqlite", "postgresql+psycopg")
# What users paste for PostgreSQL (Heroku's postgres://, SQLAlchemy's default driver, psycopg2):
# read with the psycopg 3 driver this package installs.
POSTGRES_ALIASES = ("postgres", "postgresql", "postgresql+psycopg2")


def database_url(name: str, raw: str) -> str:
    """A SQLite or PostgreSQL URL, PostgreSQL always with the psycopg 3 driver."""
    url = raw.strip()
    scheme, found, rest = url.partition("://")
    if found and scheme.lower() in DATABASE_SCHEMES:
        return url
    if found and scheme.lower() in POSTGRES_ALIASES:
        return f"postgresql+psycopg://{rest}"
    shown = f"{scheme}://..." if found else "a value that is not a URL"
    raise ConfigError(
        f"{name} is {shown}: use sqlite:///PATH or postgresql://USER@HOST/DATABASE "
        "(postgres://, postgresql+psycopg:// and postgresql+psycopg2:// are read the same way)"
    )


def database_url_note(env: Mapping[str, str] | None = None) -> str | None:
    """One line saying how a pasted PostgreSQL URL is read, when it was rewritten."""
    raw = (os.environ if env is None else env).get(DATABASE_URL.env) or ""
    scheme = raw.strip().partition("://")[0]
    if scheme.lower() in POSTGRES_ALIASES:
        return f"note: DATABASE_URL {scheme}://... is read as postgresql+psycopg://... (psycopg 3)"
    return None


def ratelimit_storage(name: str, raw: str) -> str:
    if not raw.startswith(RATELIMIT_SCHEMES):
        raise ConfigError(f"{name} must be memory:// or redis://..., got {masked(raw)!r}")
    return raw


def queue_url(name: str, raw: str) -> str | None:
    if not raw.startswith(("redis://", "rediss://")):
        raise ConfigError(f"{name} must be a redis:// or rediss:// URL, got {masked(raw)!r}")
    return raw


def algorithms(name: str, raw: str) -> tuple[str, ...]:
    chosen = tuple(a.strip() for a in raw.split(",") if a.strip())
    unknown = [a for a in chosen if a not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
    if not chosen or unknown:
        raise ConfigError(f"{name} has unsupported algorithm(s): {unknown or '(none)'}")
    return chosen


def url_prefix(name: str, raw: str) -> str:
    prefix = "/" + raw.strip().strip("/")
    return "" if prefix == "/" else prefix


# the declarations, in the README's order -----------------------------------------------------
STRIPE_API_KEY = Setting[str | None](
    "STRIPE_API_KEY",
    None,
    stripe_key,
    "secret (`sk_`) or restricted (`rk_`) key; required to serve or sweep",
    shown="none",
    blank_is_unset=False,
)
STRIPE_API_BASE = Setting[str | None](
    "STRIPE_API_BASE",
    None,
    stripe_base,
    "point the SDK elsewhere (the fake, stripe-mock)",
    shown="Stripe's",
)
STRIPE_TIMEOUT_S = Setting[float](
    "STRIPE_TIMEOUT_S",
    30.0,
    number(0.1, 600),
    "seconds before a Stripe request that gets no answer is given up (and retried)",
)
STRIPE_ACCOUNT = Setting[str | None](
    "STRIPE_ACCOUNT",
    None,
    text,
    "sweep a connected account (`Stripe-Account` header)",
    shown="none",
)
DATABASE_URL = Setting[str | None](
    "DATABASE_URL",
    None,
    database_url,
    "SQLAlchemy URL; `postgresql+psycopg://...` in production",
    shown="SQLite in the data folder",
)
INSTANCE_PATH = Setting[str | None](
    "SWEEPER_INSTANCE_PATH",
    None,
    text,
    "the data folder: the default SQLite file and the audit journals (platformdirs' user data "
    "directory, whatever the current directory)",
    shown="`~/.local/share/checkout-sweeper`",
)
JWT_SECRET = Setting[str | None](
    "JWT_SECRET", None, text, "HS* secret the app signs its tokens with", shown="none"
)
JWT_PUBLIC_KEY = Setting[str | None](
    "JWT_PUBLIC_KEY",
    None,
    text,
    "PEM public key for RS*/ES*/PS*/EdDSA tokens (instead of `JWT_SECRET`)",
    shown="none",
)
JWT_ALGORITHMS = Setting[tuple[str, ...]](
    "JWT_ALGORITHMS",
    ("HS256",),
    algorithms,
    "comma-separated; HMAC and public-key ones never mixed",
)
JWT_AUDIENCE = Setting[str | None](
    "JWT_AUDIENCE", None, text, "required in tokens and checked when set"
)
JWT_ISSUER = Setting[str | None](
    "JWT_ISSUER", None, text, "required in tokens and checked when set"
)
JWT_USER_ID_CLAIM = Setting[str](
    "JWT_USER_ID_CLAIM", "sub", text, "claim holding the user id (a string)"
)
JWT_LEEWAY_S = Setting[float](
    "JWT_LEEWAY_S", 30.0, number(0, 600), "seconds of clock skew allowed on `exp`, `nbf` and `iat`"
)
RATELIMIT_STORAGE_URI = Setting[str](
    "RATELIMIT_STORAGE_URI",
    "memory://",
    ratelimit_storage,
    "`redis://...` when more than one process serves",
)
RATELIMIT_KEY_PREFIX = Setting[str](
    "RATELIMIT_KEY_PREFIX",
    "checkout-sweeper",
    text,
    "namespace of the per-user counts in the rate-limit storage (services sharing one Redis "
    "each keep their own)",
)
QUEUE_URL = Setting[str | None](
    "SWEEPER_QUEUE_URL",
    None,
    queue_url,
    "`redis://...`: sweeps that outlive a request go to `checkout-sweeper worker` processes "
    "through this Redis (unset: they run in the serving process)",
)
SYNC_WAIT_S = Setting[float](
    "SWEEPER_SYNC_WAIT",
    0.0,
    number(0, 3600),
    "with a queue: 0 runs a synchronous call in its request (the spec); N has a worker run it "
    "too, the request waiting up to N seconds for the answer (then 202 and Location)",
)
BUSY_WAIT_S = Setting[float](
    "SWEEPER_BUSY_WAIT",
    600.0,
    number(1, 86_400),
    "with a queue: seconds a sweep waits for its account while another sweep holds it, tried "
    "again with backoff; then it ends failed, saying so",
)
MAX_SCHEDULES = Setting[int](
    "SWEEPER_MAX_SCHEDULES",
    20,
    whole(1, 10_000),
    "schedules one API user may keep (each slot is a sweep of their scope; more is a 409)",
)
QUEUE_NAMESPACE = Setting[str](
    "SWEEPER_QUEUE_NAMESPACE",
    "checkout-sweeper",
    text,
    "prefix of the job queue's keys in that Redis (services sharing one Redis each keep their own)",
)
ALLOW_LIVE_MODE = Setting[bool](
    "SWEEPER_ALLOW_LIVE_MODE", False, flag, "allow sweeps with a live-mode key"
)
MAX_RPS = Setting[float | None](
    "SWEEPER_MAX_RPS",
    20.0,
    budget,
    "Stripe requests per second one sweep may use (lists included); `auto` starts at Stripe's "
    "documented limit (25 test, 100 live) and settles just under the real one",
)
LIVE_RESERVE = 0.5  # in live mode, by default, half of the limit stays for customers' payments


def reserve(name: str, raw: str) -> float | None:
    """A share of the documented limit from 0 to 0.95, or ``auto`` (None: by mode)."""
    if raw.strip().lower() == "auto":
        return None
    return number(0, 0.95, "a share from 0 to 0.95 or 'auto'")(name, raw)


RESERVE = Setting[float | None](
    "SWEEPER_RESERVE",
    None,
    reserve,
    "share of Stripe's documented limit a sweep never uses, left to the app's own traffic; "
    f"`auto`: 0 in test mode, {LIVE_RESERVE:g} in live mode (50 of 100 req/s)",
    shown="auto",
)
STORM_PATIENCE_S = Setting[float](
    "SWEEPER_STORM_PATIENCE",
    30.0,
    number(1, 3600),
    "seconds a sweep answered within the request waits while Stripe refuses every request "
    "(429) before it stops; background sweeps and the command line wait 20 times as long",
)
PLATFORM_MAX_RPS = Setting[float | None](
    "SWEEPER_PLATFORM_MAX_RPS",
    None,
    number(1, 10_000, "requests per second"),
    "one budget (requests per second) shared by every sweep of the platform's connected "
    "accounts, in every process (counted in `RATELIMIT_STORAGE_URI`); unset: each account "
    "is paced on its own",
)


def in_flight_ceiling(name: str, raw: str) -> int | None:
    """A whole number of requests from 1 to 256, or ``auto`` (None: at most 128)."""
    if raw.strip().lower() == "auto":
        return None
    return whole(1, 256)(name, raw)


CONCURRENCY = Setting[int | None](
    "SWEEPER_CONCURRENCY",
    None,
    in_flight_ceiling,
    "the most expires one sweep keeps in flight; the pool sizes itself below it to the budget's "
    "rate times Stripe's measured latency, with headroom; `auto`: at most 128",
    shown="auto",
)
LEASE_TTL_S = Setting[float](
    "SWEEPER_LEASE_TTL",
    30.0,
    number(1, 3600),
    "seconds before a dead sweeper's account lease lapses",
)
AUDIT_GRACE_S = Setting[float](
    "SWEEPER_AUDIT_GRACE_S",
    60.0,
    number(0, 86_400),
    "how long a finished sweep waits for an unreachable database before leaving its journal",
)
API_PREFIX = Setting[str](
    "SWEEPER_API_PREFIX",
    "/v1",
    url_prefix,
    "where the endpoint's blueprint is mounted (empty: at the root)",
    blank_is_unset=False,
)
TRUSTED_PROXY_COUNT = Setting[int](
    "TRUSTED_PROXY_COUNT",
    0,
    whole(0, 16),
    "proxies in front that append `X-Forwarded-For` (werkzeug ProxyFix)",
)
METRICS_TOKEN = Setting[str | None](
    "METRICS_TOKEN",
    None,
    text,
    "Bearer token required on `/metrics`; unset: `/metrics` answers loopback callers only",
)
PUSHGATEWAY = Setting[str | None](
    "PROMETHEUS_PUSHGATEWAY",
    None,
    text,
    "`sweep` pushes its metrics to this Pushgateway URL when it ends",
)
METRICS_DIR = Setting[str | None](
    "PROMETHEUS_MULTIPROC_DIR",
    None,
    text,
    "set by `serve` for its workers (prometheus-client's multiprocess mode: one scrape adds "
    "up every worker); set it yourself only when running gunicorn by hand",
)
BIND = Setting[str](
    "BIND", "127.0.0.1:8000", text, "address gunicorn listens on (`serve --host/--port`)"
)
WEB_CONCURRENCY = Setting[int](
    "WEB_CONCURRENCY",
    1,
    whole(1, 256),
    "gunicorn workers for `serve` (or `--workers`); more than 1 needs `redis://` rate limits",
)
GUNICORN_THREADS = Setting[int](
    "GUNICORN_THREADS",
    16,  # health checks keep a thread while requests wait on a dependency
    whole(1, 1024),
    "threads per gunicorn worker (gthread)",
)
GUNICORN_TIMEOUT = Setting[int](
    "GUNICORN_TIMEOUT", 900, whole(1, 86_400), "seconds before gunicorn restarts a silent worker"
)
GUNICORN_GRACEFUL_TIMEOUT = Setting[int](
    "GUNICORN_GRACEFUL_TIMEOUT",
    600,
    whole(1, 86_400),
    "seconds a stopping worker has to finish a running sweep",
)
LOG_LEVEL = Setting[str](
    "LOG_LEVEL",
    "INFO",
    log_level,
    "level of the JSON log lines of `serve` (commands log warnings only unless it is set)",
)

SETTINGS: tuple[Setting[Any], ...] = (
    STRIPE_API_KEY,
    STRIPE_API_BASE,
    STRIPE_TIMEOUT_S,
    STRIPE_ACCOUNT,
    DATABASE_URL,
    INSTANCE_PATH,
    JWT_SECRET,
    JWT_PUBLIC_KEY,
    JWT_ALGORITHMS,
    JWT_AUDIENCE,
    JWT_ISSUER,
    JWT_USER_ID_CLAIM,
    JWT_LEEWAY_S,
    RATELIMIT_STORAGE_URI,
    RATELIMIT_KEY_PREFIX,
    QUEUE_URL,
    QUEUE_NAMESPACE,
    SYNC_WAIT_S,
    BUSY_WAIT_S,
    MAX_SCHEDULES,
    ALLOW_LIVE_MODE,
    MAX_RPS,
    RESERVE,
    STORM_PATIENCE_S,
    CONCURRENCY,
    LEASE_TTL_S,
    AUDIT_GRACE_S,
    API_PREFIX,
    TRUSTED_PROXY_COUNT,
    METRICS_TOKEN,
    PUSHGATEWAY,
    METRICS_DIR,
    BIND,
    WEB_CONCURRENCY,
    GUNICORN_THREADS,
    GUNICORN_TIMEOUT,
    GUNICORN_GRACEFUL_TIMEOUT,
    LOG_LEVEL,
)


def configuration_table() -> str:
    """The README's configuration table, rendered from ``SETTINGS``."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {s.shown_default} | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


# the settings a process runs with ------------------------------------------------------------
@dataclass(frozen=True)
class ServerSettings:
    """How ``serve`` runs gunicorn, and how loud the logs are."""

    bind: str = BIND.default
    workers: int = WEB_CONCURRENCY.default
    threads: int = GUNICORN_THREADS.default
    timeout_s: int = GUNICORN_TIMEOUT.default
    graceful_timeout_s: int = GUNICORN_GRACEFUL_TIMEOUT.default
    log_level: str = LOG_LEVEL.default

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if env is None else env
        return cls(
            bind=BIND.read(env),
            workers=WEB_CONCURRENCY.read(env),
            threads=GUNICORN_THREADS.read(env),
            timeout_s=GUNICORN_TIMEOUT.read(env),
            graceful_timeout_s=GUNICORN_GRACEFUL_TIMEOUT.read(env),
            log_level=LOG_LEVEL.read(env),
        )


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
        chosen = JWT_ALGORITHMS.read(env)
        return cls(
            key=_jwt_key(env, chosen),
            algorithms=chosen,
            audience=JWT_AUDIENCE.read(env),
            issuer=JWT_ISSUER.read(env),
            user_id_claim=JWT_USER_ID_CLAIM.read(env),
            leeway_s=JWT_LEEWAY_S.read(env),
        )


def _jwt_key(env: Mapping[str, str], chosen: tuple[str, ...]) -> str | None:
    """JWT_SECRET for HS*, JWT_PUBLIC_KEY for the others; never both, never mixed."""
    hmac = set(chosen) & HMAC_ALGORITHMS
    if hmac and set(chosen) - HMAC_ALGORITHMS:
        raise ConfigError(f"{JWT_ALGORITHMS.env} must not mix HMAC (HS*) and public-key algorithms")
    secret, public_key = JWT_SECRET.read(env), JWT_PUBLIC_KEY.read(env)
    if secret and public_key:
        raise ConfigError(f"set {JWT_SECRET.env} or {JWT_PUBLIC_KEY.env}, not both")
    if hmac and public_key:
        raise ConfigError(f"{JWT_PUBLIC_KEY.env} is set but JWT_ALGORITHMS are HMAC (HS*) ones")
    if not hmac and secret:
        raise ConfigError(f"{JWT_SECRET.env} is set but JWT_ALGORITHMS are {', '.join(chosen)}")
    if public_key and "BEGIN" not in public_key:
        raise ConfigError(f"{JWT_PUBLIC_KEY.env} must be a PEM-encoded public key")
    return secret or public_key


def default_instance_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded SQLite database and the audit journals live: ``SWEEPER_INSTANCE_PATH``,
    else the user's data directory (``~/.local/share/checkout-sweeper`` on Linux), never the
    current directory, so every command sees the same users, history and leases."""
    chosen = INSTANCE_PATH.read(env) or platformdirs.user_data_path(APP_NAME)
    return Path(chosen).expanduser().resolve()


def default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'checkout_sweeper.sqlite3'}"


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
    concurrency: int | None  # the ceiling of the pool; None: auto
    trusted_proxy_count: int
    server: ServerSettings
    journal_dir: Path
    metrics_token: str | None = METRICS_TOKEN.default
    pushgateway: str | None = PUSHGATEWAY.default
    lease_ttl_s: float = LEASE_TTL_S.default
    audit_grace_s: float = AUDIT_GRACE_S.default
    api_prefix: str = API_PREFIX.default
    ratelimit_key_prefix: str = RATELIMIT_KEY_PREFIX.default
    reserve: float | None = RESERVE.default
    storm_patience_s: float = STORM_PATIENCE_S.default
    queue_url: str | None = QUEUE_URL.default
    queue_namespace: str = QUEUE_NAMESPACE.default
    sync_wait_s: float = SYNC_WAIT_S.default
    busy_wait_s: float = BUSY_WAIT_S.default
    max_schedules: int = MAX_SCHEDULES.default
    platform_max_rps: float | None = PLATFORM_MAX_RPS.default

    def check_queue(self) -> None:
        """Workers spend the quota of the sweeps they run: the counts must be shared."""
        if self.queue_url and self.ratelimit_storage_uri.startswith("memory://"):
            raise ConfigError(
                f"{QUEUE_URL.env} needs {RATELIMIT_STORAGE_URI.env}=redis://... (with memory:// "
                "each process would count the sweep quota on its own)"
            )

    def check_for_api(self) -> None:
        """What serving the endpoint needs on top of the database: a Stripe key and a JWT key."""
        self.check_queue()
        problem = key_problem(self.stripe_api_key)
        if problem is not None:
            raise ConfigError(problem)
        if not self.jwt.key:
            hmac = self.jwt.algorithms[0].startswith("HS")
            which = JWT_SECRET.env if hmac else JWT_PUBLIC_KEY.env
            raise ConfigError(f"{which} is required for {', '.join(self.jwt.algorithms)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, instance_path: Path) -> Settings:
        env = os.environ if env is None else env
        return cls(
            stripe_api_key=STRIPE_API_KEY.read(env),
            stripe_api_base=STRIPE_API_BASE.read(env),
            stripe_account=STRIPE_ACCOUNT.read(env),
            stripe_timeout_s=STRIPE_TIMEOUT_S.read(env),
            database_url=DATABASE_URL.read(env) or default_database_url(instance_path),
            jwt=JwtSettings.from_env(env),
            ratelimit_storage_uri=RATELIMIT_STORAGE_URI.read(env),
            allow_live_mode=ALLOW_LIVE_MODE.read(env),
            max_rps=MAX_RPS.read(env),
            concurrency=CONCURRENCY.read(env),
            trusted_proxy_count=TRUSTED_PROXY_COUNT.read(env),
            server=ServerSettings.from_env(env),
            journal_dir=instance_path / "journal",
            metrics_token=METRICS_TOKEN.read(env),
            pushgateway=PUSHGATEWAY.read(env),
            lease_ttl_s=LEASE_TTL_S.read(env),
            audit_grace_s=AUDIT_GRACE_S.read(env),
            api_prefix=API_PREFIX.read(env),
            ratelimit_key_prefix=RATELIMIT_KEY_PREFIX.read(env),
            reserve=RESERVE.read(env),
            storm_patience_s=STORM_PATIENCE_S.read(env),
            queue_url=QUEUE_URL.read(env),
            queue_namespace=QUEUE_NAMESPACE.read(env),
            sync_wait_s=SYNC_WAIT_S.read(env),
            busy_wait_s=BUSY_WAIT_S.read(env),
            max_schedules=MAX_SCHEDULES.read(env),
            platform_max_rps=PLATFORM_MAX_RPS.read(env),
        )

"""Settings from the environment, read and checked once at start-up.

A missing or contradictory setting stops the service with a message that names the variable,
instead of surfacing as a 500 on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .stripe_api import KEY_PATTERN

HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
PUBLIC_KEY_ALGORITHMS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting is missing, malformed or contradicts another; the message names it."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def default_instance_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded SQLite database lives: ``SWEEPER_INSTANCE_PATH`` or ./instance."""
    env = os.environ if env is None else env
    return Path(env.get("SWEEPER_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'checkout_sweeper.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    stripe_api_key: str | None
    stripe_api_base: str | None
    stripe_account: str | None
    database_url: str
    jwt_key: str | None
    jwt_algorithms: tuple[str, ...]
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_user_id_claim: str
    ratelimit_storage_uri: str
    allow_live_mode: bool
    max_rps: float
    concurrency: int
    trusted_proxy_count: int
    lease_ttl_s: float = 30.0
    api_prefix: str = "/v1"

    def check_for_api(self) -> None:
        """What serving the endpoint needs on top of the database: a Stripe key and a JWT key."""
        if not self.stripe_api_key:
            raise ConfigError("STRIPE_API_KEY is required to serve the API")
        if not self.jwt_key:
            which = "JWT_SECRET" if self.jwt_algorithms[0].startswith("HS") else "JWT_PUBLIC_KEY"
            raise ConfigError(f"{which} is required for {', '.join(self.jwt_algorithms)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, instance_path: Path) -> Settings:
        env = os.environ if env is None else env
        key = env.get("STRIPE_API_KEY") or None
        if key is not None and not KEY_PATTERN.match(key):
            raise ConfigError(
                "STRIPE_API_KEY must be a secret (sk_) or restricted (rk_) key, "
                "test or live; publishable keys (pk_) cannot expire sessions"
            )
        algorithms = tuple(
            a.strip() for a in env.get("JWT_ALGORITHMS", "HS256").split(",") if a.strip()
        )
        unknown = [a for a in algorithms if a not in HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS]
        if not algorithms or unknown:
            raise ConfigError(f"JWT_ALGORITHMS has unsupported algorithm(s): {unknown or '(none)'}")
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
        jwt_key = secret or public_key
        storage = env.get("RATELIMIT_STORAGE_URI", "memory://")
        if not storage.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
            raise ConfigError(
                f"RATELIMIT_STORAGE_URI must be memory:// or redis://..., got {storage!r}"
            )
        prefix = "/" + env.get("SWEEPER_API_PREFIX", "/v1").strip("/")
        return cls(
            stripe_api_key=key,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            stripe_account=env.get("STRIPE_ACCOUNT") or None,
            database_url=env.get("DATABASE_URL") or default_database_url(instance_path),
            jwt_key=jwt_key,
            jwt_algorithms=algorithms,
            jwt_audience=env.get("JWT_AUDIENCE") or None,
            jwt_issuer=env.get("JWT_ISSUER") or None,
            jwt_user_id_claim=env.get("JWT_USER_ID_CLAIM", "sub") or "sub",
            ratelimit_storage_uri=storage,
            allow_live_mode=_flag(env, "SWEEPER_ALLOW_LIVE_MODE"),
            max_rps=_number(env, "SWEEPER_MAX_RPS", 20.0, minimum=0.1),
            concurrency=int(_number(env, "SWEEPER_CONCURRENCY", 8, minimum=1)),
            trusted_proxy_count=int(_number(env, "TRUSTED_PROXY_COUNT", 0, minimum=0)),
            lease_ttl_s=_number(env, "SWEEPER_LEASE_TTL", 30.0, minimum=1.0),
            api_prefix="" if prefix == "/" else prefix,
        )

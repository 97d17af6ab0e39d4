"""Settings: every variable declared once, checked at start, and documented as declared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checkout_sweeper import settings as config
from checkout_sweeper.settings import SETTINGS, ConfigError, ServerSettings, Settings

from helpers import JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent
BASE = {"STRIPE_API_KEY": "sk_test_abcdefgh12", "JWT_SECRET": JWT_SECRET}


def _settings(env: dict[str, str], tmp_path: Path) -> Settings:
    settings = Settings.from_env(env, instance_path=tmp_path)
    settings.check_for_api()
    return settings


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({**BASE, "STRIPE_API_KEY": "pk_test_abc"}, "STRIPE_API_KEY"),
        ({"JWT_SECRET": JWT_SECRET}, "STRIPE_API_KEY"),
        ({"STRIPE_API_KEY": "sk_test_abcdefgh12"}, "JWT_SECRET"),
        ({**BASE, "JWT_ALGORITHMS": "HS256,RS256"}, "mix"),
        ({**BASE, "JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS"),
        ({**BASE, "JWT_LEEWAY_S": "-1"}, "JWT_LEEWAY_S"),
        ({**BASE, "SWEEPER_MAX_RPS": "fast"}, "SWEEPER_MAX_RPS"),
        ({**BASE, "SWEEPER_CONCURRENCY": "2.5"}, "SWEEPER_CONCURRENCY"),
        ({**BASE, "SWEEPER_ALLOW_LIVE_MODE": "maybe"}, "SWEEPER_ALLOW_LIVE_MODE"),
        ({**BASE, "RATELIMIT_STORAGE_URI": "memcached://x"}, "RATELIMIT_STORAGE_URI"),
        ({**BASE, "WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({**BASE, "GUNICORN_TIMEOUT": "soon"}, "GUNICORN_TIMEOUT"),
        ({**BASE, "LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({**BASE, "JWT_LEEWAY_S": "nan"}, "JWT_LEEWAY_S must be a finite number"),
        ({**BASE, "JWT_LEEWAY_S": "1e9"}, "JWT_LEEWAY_S must be from 0 to 600"),
        ({**BASE, "SWEEPER_MAX_RPS": "inf"}, "SWEEPER_MAX_RPS must be a finite number"),
        ({**BASE, "SWEEPER_MAX_RPS": "-inf"}, "SWEEPER_MAX_RPS"),
        ({**BASE, "SWEEPER_AUDIT_GRACE_S": "nan"}, "SWEEPER_AUDIT_GRACE_S"),
        ({**BASE, "SWEEPER_LEASE_TTL": "nan"}, "SWEEPER_LEASE_TTL"),
        ({**BASE, "SWEEPER_LEASE_TTL": "inf"}, "SWEEPER_LEASE_TTL"),
        ({**BASE, "STRIPE_TIMEOUT_S": "infinity"}, "STRIPE_TIMEOUT_S"),
        ({**BASE, "GUNICORN_THREADS": "NaN"}, "GUNICORN_THREADS"),
        ({**BASE, "SWEEPER_RESERVE": "half"}, "SWEEPER_RESERVE must be a share from 0 to 0.95"),
        ({**BASE, "SWEEPER_RESERVE": "1"}, "SWEEPER_RESERVE must be from 0 to 0.95"),
        ({**BASE, "SWEEPER_STORM_PATIENCE": "0"}, "SWEEPER_STORM_PATIENCE must be from 1"),
        ({**BASE, "SWEEPER_CONCURRENCY": "many"}, "SWEEPER_CONCURRENCY must be a number"),
        ({**BASE, "SWEEPER_CONCURRENCY": "300"}, "SWEEPER_CONCURRENCY must be from 1 to 256"),
        ({**BASE, "DATABASE_URL": "mysql://u:p@db/x"}, "DATABASE_URL is mysql://"),
        ({**BASE, "DATABASE_URL": "not a url"}, "DATABASE_URL is a value that is not a URL"),
    ],
)
def test_a_bad_setting_is_refused_with_the_variable_named(env, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        _settings(env, tmp_path)


def test_defaults_when_nothing_but_the_keys_is_set(tmp_path):
    settings = _settings(BASE, tmp_path)
    assert (settings.max_rps, settings.concurrency, settings.lease_ttl_s) == (20, None, 30)
    assert settings.jwt.algorithms == ("HS256",) and settings.jwt.leeway_s == 30
    assert settings.server == ServerSettings()
    assert settings.database_url.endswith("checkout_sweeper.sqlite3")
    assert (settings.reserve, settings.storm_patience_s) == (None, 30)  # reserve by mode
    assert _settings({**BASE, "SWEEPER_RESERVE": "0.3"}, tmp_path).reserve == 0.3


def test_server_and_log_settings_are_read_with_the_rest(tmp_path):
    env = {**BASE, "BIND": "0.0.0.0:9000", "WEB_CONCURRENCY": "3", "LOG_LEVEL": "debug"}
    server = _settings(env, tmp_path).server
    assert (server.bind, server.workers, server.log_level) == ("0.0.0.0:9000", 3, "DEBUG")


def test_the_readme_configuration_table_is_the_declared_one():
    readme = (ROOT / "README.md").read_text()
    assert config.configuration_table() in readme, (
        "README.md's configuration table differs from settings.SETTINGS; run `cog -r README.md`"
    )


SRC = ROOT / "src" / "checkout_sweeper"
RAW_READ = re.compile(
    r"""(?:environ\.get\(|environ\[|getenv\(|env\.get\()\s*["']([A-Z][A-Z_]+)["']"""
)


def test_no_code_reads_a_variable_by_name_outside_its_declaration():
    """A variable is read through its ``Setting`` (``MAX_RPS.read(env)``), never by its name,
    so the name, default and parser are written once."""
    raw_reads = []
    for path in SRC.rglob("*.py"):
        if "fake_stripe" in path.parts:
            continue  # the fake is a separate tool with its own command-line options
        raw_reads += [f"{path.name}: {name}" for name in RAW_READ.findall(path.read_text())]
    assert raw_reads == []


def test_every_declared_setting_is_read_somewhere():
    code = "\n".join(path.read_text() for path in SRC.rglob("*.py"))
    declared = {name for name, value in vars(config).items() if value in SETTINGS}
    assert len(declared) == len(SETTINGS)
    unread = [name for name in declared if f"{name}.read(" not in code]
    assert unread == []


@pytest.mark.parametrize(
    "pasted", ["postgres://u@db/x", "postgresql://u@db/x", "postgresql+psycopg2://u@db/x"]
)
def test_a_pasted_postgresql_url_is_read_with_the_installed_driver(pasted, tmp_path):
    settings = _settings({**BASE, "DATABASE_URL": pasted}, tmp_path)
    assert settings.database_url == "postgresql+psycopg://u@db/x"
    note = config.database_url_note({"DATABASE_URL": pasted})
    assert note is not None and "postgresql+psycopg://" in note


def test_a_setting_left_empty_takes_its_default(tmp_path):
    env = {**BASE, "SWEEPER_CONCURRENCY": "", "SWEEPER_MAX_RPS": " ", "BIND": ""}
    settings = _settings(env, tmp_path)
    assert (settings.concurrency, settings.max_rps) == (config.CONCURRENCY.default, 20)
    assert settings.server.bind == config.BIND.default

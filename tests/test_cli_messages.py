"""What the command line says when it cannot do what was asked: one ``error: ...`` line (a
JSON object with ``--log-format json``), exit 2 for a bad option, and with ``--json`` one
object with ``error`` on stdout, whatever failed."""

from __future__ import annotations

import json

import pytest

from harness import sweeper_env
from helpers import run_command

BAD_OPTIONS = [
    ("--limit", "0"),
    ("--older-than", "soon"),
    ("--metadata", "novalue"),
    ("--max-rps", "fast"),
    ("--created-before", "yesterday-ish"),
]


@pytest.fixture
def env(tmp_path, fake_stripe):
    return sweeper_env(tmp_path / "data", fake_stripe.url)


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_a_bad_option_with_json_is_one_object_with_error_and_exit_2(env, option, value):
    ran = run_command(env, "sweep", "--dry-run", "--json", option, value)
    assert ran.returncode == 2
    [line] = ran.stdout.splitlines()
    answer = json.loads(line)
    assert option in answer["error"] and answer["dry_run"] is True
    assert answer["expired_count"] == 0 and answer["sweep_id"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--limit", "0"],
        ["sweep", "--no-such-option"],
        ["--log-format", "xml", "history"],
        ["users", "add"],
        ["no-such-command"],
    ],
)
def test_a_usage_error_is_one_error_line_and_exit_2(env, args):
    ran = run_command(env, *args)
    assert ran.returncode == 2
    [line] = ran.stderr.splitlines()
    assert line.startswith("error: ") and "--help" in line
    assert "Usage:" not in ran.stderr


def test_other_commands_json_failures_are_an_object_with_error(env):
    ran = run_command(env, "users", "add", "--json")
    assert ran.returncode == 2
    assert "--email" in json.loads(ran.stdout)["error"]


def test_a_fleet_usage_error_inside_the_command_is_json_too(env):
    ran = run_command(env, "sweep", "--json", "--all-accounts", "--account", "acct_1")
    assert ran.returncode == 2
    assert "not both" in json.loads(ran.stdout)["error"]


def test_json_log_format_makes_error_lines_json(env):
    ran = run_command(env, "--log-format", "json", "sweep", "--limit", "0")
    assert ran.returncode == 2
    [line] = ran.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and "--limit" in entry["message"]


def test_an_unreachable_stripe_is_a_json_line_and_verbose_shows_the_traceback(env):
    down = {**env, "STRIPE_API_BASE": "http://127.0.0.1:9", "STRIPE_MAX_RETRIES": "0"}
    ran = run_command(down, "--log-format", "json", "sweep", "--dry-run")
    assert ran.returncode == 3
    errors = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    assert [e["level"] for e in errors if e["level"] == "error"] == ["error"]
    assert not any(line.startswith("error:") for line in ran.stderr.splitlines())
    loud = run_command(down, "-v", "sweep", "--dry-run")
    assert loud.returncode == 3 and "Traceback (most recent call last)" in loud.stderr
    assert "error: Stripe could not be used" in loud.stderr


def test_a_publishable_api_key_is_named_as_the_option_given(env):
    ran = run_command(env, "sweep", "--dry-run", "--api-key", "pk_test_notasecret")
    assert ran.returncode == 2
    assert "error: --api-key is a publishable key" in ran.stderr
    assert "STRIPE_API_KEY" not in ran.stderr and "notasecret" not in ran.stderr


@pytest.mark.parametrize("command", ["fake-stripe", "demo"])
def test_commands_that_keep_nothing_offer_no_database_url(env, command):
    assert "--database-url" not in run_command(env, command, "--help").stdout
    ran = run_command(env, command, "--database-url", "sqlite:///x.db")
    assert ran.returncode == 2 and "No such option '--database-url'" in ran.stderr
    assert "--database-url" in run_command(env, "history", "--help").stdout

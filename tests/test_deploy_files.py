"""The deployment files in ``deploy/`` say only what the code accepts: real commands and
options, declared settings, and an nginx edit that still finds what it edits."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from checkout_sweeper.cli import main
from checkout_sweeper.settings import SETTINGS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
DECLARED = {setting.env for setting in SETTINGS}


def _parses(args: list[str]) -> None:
    """The command line as click reads it: an unknown command or option raises."""
    context = click.Context(main)
    command = main.get_command(context, args[0])
    assert command is not None, f"no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]), parent=context)


def test_the_compose_stack_runs_real_commands_with_declared_settings():
    services = COMPOSE["services"]
    assert {"web", "worker", "nginx", "postgres", "redis", "prometheus"} <= set(services)
    for role in ("web", "worker"):
        _parses(services[role]["command"])
        assert set(services[role]["environment"]) <= DECLARED
    assert "SWEEPER_QUEUE_URL" in services["worker"]["environment"]
    assert services["worker"]["environment"]["RATELIMIT_STORAGE_URI"].startswith("redis://")


def test_the_compose_nginx_edit_still_matches_the_nginx_config():
    conf = (DEPLOY / "nginx.conf").read_text()
    script = " ".join(COMPOSE["services"]["nginx"]["command"])
    for pattern in re.findall(r"s/([^/]+)/", script):
        assert pattern.replace("\\", "") in conf, f"the compose edit no longer finds {pattern!r}"


def test_prometheus_scrapes_the_port_the_workers_serve_metrics_on():
    command = COMPOSE["services"]["worker"]["command"]
    port = command[command.index("--metrics-port") + 1]
    scrape = yaml.safe_load((DEPLOY / "compose-prometheus.yml").read_text())
    worker_job = next(j for j in scrape["scrape_configs"] if "worker" in j["job_name"])
    assert str(worker_job["dns_sd_configs"][0]["port"]) == port


def test_prometheus_scrapes_web_with_the_token_web_checks_and_there_is_no_default_one():
    token = COMPOSE["x-sweeper"]["environment"]["METRICS_TOKEN"]
    assert token.startswith("${METRICS_TOKEN:?"), token  # required: no public default
    scrape = yaml.safe_load((DEPLOY / "compose-prometheus.yml").read_text())
    web_job = next(j for j in scrape["scrape_configs"] if "web" in j["job_name"])
    path = web_job["authorization"]["credentials_file"]
    assert "credentials" not in web_job["authorization"]  # nothing to edit by hand
    [secret] = COMPOSE["services"]["prometheus"]["secrets"]
    assert path == f"/run/secrets/{secret}"
    assert COMPOSE["secrets"][secret] == {"environment": "METRICS_TOKEN"}


def test_the_systemd_unit_starts_a_worker_that_stops_with_sigterm():
    unit = (DEPLOY / "checkout-sweeper-worker@.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE)
    assert exec_start is not None
    words = shlex.split(exec_start.group(1))
    assert words[0].endswith("/checkout-sweeper")
    _parses(words[1:])
    assert "KillSignal=SIGTERM" in unit and re.search(r"^TimeoutStopSec=\d+", unit, re.MULTILINE)
    for name in re.findall(r"^Environment=(\w+)=", unit, re.MULTILINE):
        assert name in DECLARED

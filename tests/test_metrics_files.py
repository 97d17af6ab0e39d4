"""The alert rules and the dashboard in deploy/ name only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from checkout_sweeper import metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
EXPORTED = {
    collector._name
    for collector in vars(metrics).values()
    if hasattr(collector, "_name") and hasattr(collector, "_type")
}


def _names(expression: str) -> set[str]:
    found = set(re.findall(r"checkout_sweeper_[a-z_]+", expression))
    return {re.sub(r"_(total|bucket|created|count|sum)$", "", name) for name in found}


def test_alert_rules_use_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) == 6
    for expression in expressions:
        assert _names(expression) <= EXPORTED, expression


def test_dashboard_panels_use_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert expressions
    for expression in expressions:
        assert _names(expression) <= EXPORTED, expression


def test_serve_sets_up_its_metrics_folder_before_anything_loads_the_metrics_library():
    """prometheus-client picks where values live when first imported: if ``serve`` loaded it
    before setting PROMETHEUS_MULTIPROC_DIR, its forked workers would keep values in memory
    and /metrics would answer an empty page."""
    import subprocess
    import sys

    loads = (
        "import sys, checkout_sweeper.cli.serve, checkout_sweeper.cli.context;"
        "from checkout_sweeper.settings import Settings;"
        "print('prometheus_client' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", loads], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr

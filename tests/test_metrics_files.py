"""The alert rules and the dashboard in deploy/ name only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from checkout_sweeper import metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
EXPORTED = {
    collector._name  # type: ignore[attr-defined]
    for collector in vars(metrics).values()
    if hasattr(collector, "_name") and hasattr(collector, "_type")
}


def _names(expression: str) -> set[str]:
    found = set(re.findall(r"checkout_sweeper_[a-z_]+", expression))
    return {re.sub(r"_(total|bucket|created|count|sum)$", "", name) for name in found}


def test_alert_rules_use_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) == 5
    for expression in expressions:
        assert _names(expression) <= EXPORTED, expression


def test_dashboard_panels_use_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert expressions
    for expression in expressions:
        assert _names(expression) <= EXPORTED, expression

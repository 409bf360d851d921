"""The alerting rules (deploy/helm/sandwich/files/alerts.yaml, shipped by the chart as a
PrometheusRule) checked and unit-tested by Prometheus' own promtool: every alert has a case where
it fires and one where it stays quiet (deploy/prometheus/alerts.test.yaml), and every metric a rule
reads is one the platform exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

# Imported for what they register in prometheus_client's registry: the platform's metrics, the letters' gauge.
import sandwich.platform.observability
import sandwich.services.notifications.sender  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "helm" / "sandwich" / "files" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "and", "or", "deriv", "le",
    "without", "on", "ignoring", "bool",
}  # fmt: skip


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: ./dev test installs Debian's prometheus package")
        pytest.skip("promtool is missing here: apt-get install prometheus (./dev test does it)")
    return found


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


def test_promtool_runs_the_rules_unit_tests() -> None:
    tested = subprocess.run(
        [_promtool(), "test", "rules", str(RULE_TESTS.name)],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {str(rule["alert"]) for rule in _alerts()}
    assert names == firing == quiet


def test_every_metric_a_rule_reads_is_one_the_platform_exports() -> None:
    exported = set()
    for collector in list(REGISTRY._collector_to_names):  # every metric the imported modules registered
        exported.update(REGISTRY._collector_to_names[collector])
    for rule in _alerts():
        # label matchers, strings, ranges and grouping clauses out: what is left names metrics
        expression = re.sub(
            r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(by|without)\s*\([^)]*\)', " ", str(rule["expr"])
        )
        names = set(re.findall(r"[a-z_][a-z0-9_]*", expression)) - PROMQL_WORDS
        assert names <= exported, (rule["alert"], names - exported)

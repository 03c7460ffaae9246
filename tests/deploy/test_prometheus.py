"""promtool on the rules (syntax and unit tests), on the compose Prometheus's configuration and
on every dashboard expression; the PrometheusRule carries exactly the rule file's groups.
promtool is Debian's `prometheus` package: missing, these tests skip locally and fail in CI."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import yaml

from tests.deploy.common import ALERTS, DEPLOY, K8S, require
from tests.deploy.promql import panel_queries


def promtool(*args: str, cwd: Path = DEPLOY / "prometheus") -> str:
    done = subprocess.run([require("promtool"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in out


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    promtool("test", "rules", "alerts.test.yml")


def test_promtool_checks_the_compose_prometheus_config() -> None:
    promtool("check", "config", "prometheus.yml")


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": q.promql} for i, q in enumerate(panel_queries())
    ]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))


def test_the_prometheus_rule_carries_the_rule_file() -> None:
    script = DEPLOY / "prometheus" / "sync_rule.py"
    spec = importlib.util.spec_from_file_location("sync_rule", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = K8S / "base" / "prometheusrule.yaml"
    assert target.read_text() == module.render(), "run: python deploy/prometheus/sync_rule.py"
    rule = yaml.safe_load(target.read_text())
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]

"""promtool on the rules (syntax and unit tests), on the compose Prometheus's configuration and
on every dashboard expression; the PrometheusRule carries exactly the rule file's groups.
promtool is Debian's `prometheus` package: missing, these tests skip locally and fail in CI."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
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


# --- the alerts' unit tests cover every alert, and every environment on its own ----------------

def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _unit_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(
        (DEPLOY / "prometheus" / "alerts.test.yml").read_text())["tests"]
    return tests


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _unit_tests():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert alerts - firing == set(), "alerts never seen firing in alerts.test.yml"
    assert alerts - quiet == set(), "alerts never seen quiet in alerts.test.yml"


def test_every_rule_is_keyed_by_namespace() -> None:
    """One Prometheus may watch dev and prod: every aggregation and match keeps `namespace`,
    and absent() (one answer for every environment together) is not used."""
    for rule in _rules():
        expr = rule["expr"]
        assert "absent(" not in expr, rule["alert"]
        groupings = re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)
        assert groupings, f"{rule['alert']}: no `by (namespace, ...)`"
        for labels in groupings:
            assert "namespace" in {label.strip() for label in labels.split(",")}, (
                f"{rule['alert']}: ({labels}) without namespace")


@pytest.mark.parametrize("alert", ["ZenotiIngressDown", "ZenotiQueueWithoutConsumer",
                                   "ZenotiBrokerDisconnected", "ZenotiWebhookFailing",
                                   "ZenotiRedisUnreachable"])
def test_prod_fires_while_dev_is_healthy(alert: str) -> None:
    """A unit test whose input has both environments, where the alert fires for prod only."""
    for case in _unit_tests():
        namespaces = set(re.findall(r'namespace="([^"]+)"',
                                    " ".join(s["series"] for s in case["input_series"])))
        if not {"zenoti-events", "zenoti-events-dev"} <= namespaces:
            continue
        for check in case["alert_rule_test"]:
            fired = [a["exp_labels"]["namespace"] for a in check.get("exp_alerts") or []]
            if check["alertname"] == alert and fired and set(fired) == {"zenoti-events"}:
                return
    pytest.fail(f"no two-environment case where {alert} fires for prod alone")


def test_the_redis_runbook_covers_every_way_redis_up_reads_zero() -> None:
    """zenoti_events_redis_up is 0 when Redis cannot be reached and when it refuses our
    credentials or ACL user (processor/zenoti/redis_up.py): the runbook of the alert on it
    must send the operator to both."""
    text = (DEPLOY.parent / "docs" / "runbooks.md").read_text()
    section = text.split("## ZenotiRedisUnreachable", 1)[1].split("\n## ", 1)[0]
    source = (DEPLOY.parent / "processor" / "zenoti" / "redis_up.py").read_text()
    for refusal in ("WRONGPASS", "NOAUTH", "NOPERM"):
        assert refusal in source, f"redis_up.py no longer names {refusal}: update this test"
        assert refusal in section, refusal
    assert "ACL" in section and "zenoti-events-redis" in section
    for store_log in re.findall(r'^_DOWN = "([a-z_.]+)"$', "\n".join(
            (DEPLOY.parent / "processor" / path).read_text() for path in (
                "worker/dedupe.py", "zenoti/shared_budget.py", "zenoti/snapshot_store.py",
                "zenoti/cache.py")), re.MULTILINE):
        assert f"`{store_log}`" in section, store_log

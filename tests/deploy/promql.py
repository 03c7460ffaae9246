"""What the dashboard and the alerts ask Prometheus for: their expressions, the metric names
in them, and the labels they select or group by."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.deploy.common import ALERTS, DASHBOARD

# Grafana's variables, as the renderer and promtool see them.
# $namespace and $job: one environment, every job (the variables' defaults).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$budget": "60",
                     "$namespace": "zenoti-events", "$job": ".+"}
# RabbitMQ's Prometheus plugin (rabbitmq_prometheus), /metrics/detailed with
# family=queue_coarse_metrics, family=queue_consumer_count and family=ra_metrics, and /metrics
# (the alarms): the names are assumptions checked against the plugin's source and docs
# (deps/rabbitmq_prometheus: the collector labels per-queue rows, ra_metrics included, with
# vhost and queue; docs/operations.md), not scraped here, since these tests run against a
# broker that need not have the plugin enabled.
RABBITMQ_METRICS = {
    "rabbitmq_detailed_queue_messages": {"vhost", "queue"},
    "rabbitmq_detailed_queue_messages_ready": {"vhost", "queue"},
    "rabbitmq_detailed_queue_messages_unacked": {"vhost", "queue"},
    "rabbitmq_detailed_queue_consumers": {"vhost", "queue"},
    "rabbitmq_detailed_raft_term_total": {"vhost", "queue"},
    "rabbitmq_alarms_memory_used_watermark": set(),
    "rabbitmq_alarms_free_disk_space_watermark": set(),
}
# The redis_exporter beside Redis (deploy/k8s/base/redis.yaml, job zenoti-events-redis): names
# checked against a scrape of redis_exporter 1.45 (Debian's prometheus-redis-exporter) with a
# Redis at its maxmemory, not scraped here (the tests' Redis has no exporter).
REDIS_METRICS = {
    "redis_memory_used_bytes": {"job", "instance"},
    "redis_memory_max_bytes": {"job", "instance"},
    "redis_evicted_keys_total": {"job", "instance"},
}
# kube-state-metrics (where the cluster runs it): the object's namespace is a label of its own.
KUBE_STATE_METRICS = {
    "kube_statefulset_replicas": {"namespace", "statefulset"},
    "kube_statefulset_status_replicas_ready": {"namespace", "statefulset"},
    "kube_pod_container_status_restarts_total": {"namespace", "pod", "container"},
}
# Prometheus's own series about its targets.
PROMETHEUS_METRICS = {"up": {"job", "instance"}}
# Ours that the dashboard or the alerts use before processor/metrics.py declares them (a change
# under way): taken as known here, and test_scrape.py skips them. None now; redis_up is declared.
PENDING_METRICS: dict[str, set[str]] = {}

_NAME = re.compile(r"\b((?:zenoti_events|rabbitmq|redis|kube)_[a-z0-9_]+|up)\b(?!\s*\()")
_SELECTOR = re.compile(r"\b((?:zenoti_events|rabbitmq|redis|kube)_[a-z0-9_]+|up)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_REPLACED = re.compile(r'label_replace\([^,]+,\s*"([a-z_]+)"')


@dataclass(frozen=True)
class Query:
    where: str  # "alert ZenotiQueueOld" or "panel Confirm latency"
    expr: str

    @property
    def promql(self) -> str:
        """The expression with Grafana's variables replaced."""
        text = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            text = text.replace(variable, value)
        return text

    def metrics(self) -> set[str]:
        return set(_NAME.findall(_STRING.sub('""', self.expr)))

    def selected_labels(self) -> dict[str, set[str]]:
        """metric -> label names its selectors match on."""
        found: dict[str, set[str]] = {}
        for metric, matchers in _SELECTOR.findall(self.expr):
            found.setdefault(metric, set()).update(_MATCHER.findall(_STRING.sub('""', matchers)))
        return found

    def grouping_labels(self) -> set[str]:
        return {label.strip() for group in _GROUPING.findall(self.expr)
                for label in group.split(",") if label.strip()}

    def made_labels(self) -> set[str]:
        return set(_REPLACED.findall(self.expr))


def alert_queries() -> list[Query]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [Query(f"alert {rule['alert']}", rule["expr"]) for group in groups
            for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return board


def panel_queries() -> list[Query]:
    return [Query(f"panel {panel['title']}", target["expr"])
            for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def all_queries() -> list[Query]:
    return alert_queries() + panel_queries()

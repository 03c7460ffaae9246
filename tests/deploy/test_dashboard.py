"""The dashboard and the alerts ask only for metrics that exist, with labels they have; the
dashboard shows what docs/operations.md says it shows. (test_scrape.py checks the same names
against a scrape of the real processes.)"""

from __future__ import annotations

import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

from processor.metrics import Metrics
from tests.deploy.common import ROOT
from tests.deploy.promql import (
    KUBE_STATE_METRICS,
    PENDING_METRICS,
    PROMETHEUS_METRICS,
    RABBITMQ_METRICS,
    REDIS_METRICS,
    Query,
    alert_queries,
    all_queries,
    dashboard,
    panel_queries,
)

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
# added by Prometheus (namespace: the Prometheus Operator's target namespace, or the compose
# stack's relabelling) or by histograms
TARGET_LABELS = {"job", "instance", "namespace", "le"}


def declared() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric processor/metrics.py declares."""
    names: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            assert metric._type is not None  # set by each concrete class: counter, gauge, ...
            for suffix in SUFFIXES[metric._type]:
                names[metric._name + suffix] = set(metric._labelnames)
    return names


def known() -> dict[str, set[str]]:
    return {**PENDING_METRICS, **declared(), **RABBITMQ_METRICS, **REDIS_METRICS,
            **KUBE_STATE_METRICS, **PROMETHEUS_METRICS}


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.where)
def test_every_metric_and_label_asked_for_is_declared(query: Query) -> None:
    metrics = known()
    used = query.metrics()
    assert used or "vector(" in query.expr, "no metric in the expression"
    for name in used:
        assert name in metrics, f"{name} is neither ours (processor/metrics.py) nor a known one"
    for name, labels in query.selected_labels().items():
        labels -= TARGET_LABELS
        assert labels <= metrics[name], f"{name} has no label {labels - metrics[name]}"
    available = set().union(*(metrics[n] for n in used)) | TARGET_LABELS | query.made_labels()
    assert query.grouping_labels() <= available, query.grouping_labels() - available


SCOPE = 'namespace="$namespace", job=~"$job"'


def bare(expr: str) -> str:
    """A panel's expression without the namespace and job matchers every selector has."""
    return expr.replace("{" + SCOPE + "}", "").replace(SCOPE + ", ", "")


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(bare(q.expr) for q in panel_queries())
    for needle in ("zenoti_events_deliveries_total", "zenoti_events_confirm_seconds_bucket",
                   "zenoti_events_messages_total[", 'outcome=~"retry|dead_letter"',
                   "rabbitmq_detailed_queue_messages_ready", "zenoti.h.$1",  # depth and age
                   r".+\\.dead", "zenoti_events_api_calls_total",
                   "zenoti_events_api_budget_deferred_total", 'result="hit"',
                   # connections, snapshots, Redis (the upgrade's panels)
                   "zenoti_events_ingress_connections_open",
                   "zenoti_events_ingress_connections_refused_total",
                   "sum by (kind, result) (rate(zenoti_events_snapshot_lookups_total",
                   "zenoti_events_snapshot_pages_total", "redis_evicted_keys_total",
                   "redis_memory_max_bytes",
                   # the ingress's spool, per pod
                   "sum by (instance) (zenoti_events_spool_entries)",
                   "zenoti_events_spool_bytes", "zenoti_events_spool_limit_bytes",
                   "zenoti_events_spool_oldest_age_seconds",
                   "zenoti_events_spool_writes_total", "zenoti_events_spool_forwards_total",
                   "zenoti_events_spool_sync_seconds_bucket"):
        assert needle in text, needle


def test_queue_age_counts_only_messages_that_left_the_queues() -> None:
    """A retry or a budget deferral goes back to a delay queue: not a settlement."""
    settled = 'zenoti_events_messages_total{outcome=~"ok|dead_letter|duplicate"}'
    ages = [q for q in all_queries() if q.where in ("alert ZenotiQueueOld",
                                                    "panel Queue age (estimated)")]
    assert len(ages) == 2
    for query in ages:
        assert settled in bare(query.expr), query.where


def test_every_panel_queries_the_selectable_prometheus() -> None:
    board = dashboard()
    assert board["uid"] == "zenoti-events"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel.get("description"), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_query_is_of_the_chosen_namespace_and_jobs() -> None:
    """One Prometheus may hold several environments: every selector of every panel takes the
    namespace and job variables, which list what Prometheus has."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["namespace"]["type"] == "query" and not variables["namespace"]["multi"]
    assert "label_values(up" in variables["namespace"]["definition"]
    assert variables["job"]["multi"] and variables["job"]["includeAll"]
    assert '$namespace' in variables["job"]["definition"]
    selector = re.compile(r"\b(?:zenoti_events|rabbitmq|redis)_[a-z0-9_]+\b(\{[^}]*\})?")
    for query in panel_queries():
        for match in selector.finditer(query.expr):
            assert match.group(1) and match.group(1).startswith("{" + SCOPE), (
                query.where, match.group(0))


def test_no_panel_overlaps_another() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine


RUNBOOK_BASE = "https://github.com/example/zenoti-events/blob/main"  # overlays replace it
RUNBOOK_FILES = ("docs/operations.md", "docs/runbooks.md")


def _headings(path: str) -> set[str]:
    text = (ROOT / path).read_text()
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def test_every_alert_has_a_severity_and_an_absolute_runbook_url_to_its_section() -> None:
    import yaml

    from tests.deploy.common import ALERTS

    headings = {path: _headings(path) for path in RUNBOOK_FILES}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}
            url = rule["annotations"]["runbook_url"]
            assert url.startswith(RUNBOOK_BASE + "/docs/"), url
            path, anchor = url[len(RUNBOOK_BASE) + 1:].split("#")
            assert path in RUNBOOK_FILES, url
            assert anchor == rule["alert"].lower()
            assert anchor in headings[path], f"{path} has no section {rule['alert']}"
    assert len(alert_queries()) >= 30

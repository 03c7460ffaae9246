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
TARGET_LABELS = {"job", "instance", "le"}  # added by Prometheus or by histograms


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
    return {**declared(), **RABBITMQ_METRICS, **REDIS_METRICS, **PROMETHEUS_METRICS}


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.where)
def test_every_metric_and_label_asked_for_is_declared(query: Query) -> None:
    metrics = known()
    used = query.metrics()
    assert used or "vector(" in query.expr, "no metric in the expression"
    for name in used:
        assert name in metrics, f"{name} is neither ours (processor/metrics.py) nor a known one"
    for name, labels in query.selected_labels().items():
        assert labels <= metrics[name], f"{name} has no label {labels - metrics[name]}"
    available = set().union(*(metrics[n] for n in used)) | TARGET_LABELS | query.made_labels()
    assert query.grouping_labels() <= available, query.grouping_labels() - available


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(q.expr for q in panel_queries())
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
        assert settled in query.expr, query.where


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


def test_no_panel_overlaps_another() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    import yaml

    from tests.deploy.common import ALERTS

    operations = (ROOT / "docs" / "operations.md").read_text()
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}
            anchor = rule["annotations"]["runbook_url"].split("#")[1]
            assert anchor == rule["alert"].lower()
            assert anchor in headings, f"docs/operations.md has no section {rule['alert']}"
    assert len(alert_queries()) >= 10

"""A scrape of the real processes: the sandbox, `zenoti-events ingress` and `zenoti-events
worker` against the test broker (a fresh virtual host, see tests/conftest.py), with signed
deliveries flowing. `promtool check metrics` passes on both scrapes, and every zenoti_events_*
metric the dashboard and the alerts use is in them, with the labels they use."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Broker
from tests.deploy.common import require
from tests.deploy.promql import PENDING_METRICS, all_queries
from tests.integration.processes import SECRET, Stack, stack

pytestmark = pytest.mark.integration

DELIVERIES = 30


@pytest.fixture(scope="module")
def scrapes(broker: Broker) -> Iterator[dict[str, str]]:
    with stack(broker.url) as running:
        running.sandbox()
        running.ingress()
        running.worker()
        _deliver(running)
        ingress = f"http://127.0.0.1:{running.ingress_port}/metrics"
        worker = f"http://127.0.0.1:{running.worker_port}/metrics"
        _wait_for_handled(worker)
        yield {"ingress": httpx.get(ingress).text, "worker": httpx.get(worker).text}


def _deliver(running: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "processor.cli", "simulate", "--url", running.webhook_url,
         "--secret", SECRET, "--count", str(DELIVERIES), "--rate", "0", "--unknown-ratio", "0.1"],
        env=running.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _wait_for_handled(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled = sum(sample.value for family in text_string_to_metric_families(httpx.get(url).text)
                      if family.name == "zenoti_events_messages"
                      for sample in family.samples if sample.name.endswith("_total"))
        if handled >= DELIVERIES * 0.5:
            return
        time.sleep(0.5)
    raise AssertionError(f"the worker handled too few deliveries within {timeout} s")


def _exposed(text: str) -> dict[str, set[str]]:
    """Sample name -> label names; a labelled metric never used yet counts with its family."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for suffix in suffixes.get(family.type, ("",)):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.mark.parametrize("process", ["ingress", "worker"])
def test_promtool_check_metrics_passes_on_the_scrape(scrapes: dict[str, str], process: str) -> None:
    done = subprocess.run([require("promtool"), "check", "metrics"], input=scrapes[process],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_of_ours_used_by_the_dashboard_and_alerts_is_scraped(
        scrapes: dict[str, str]) -> None:
    exposed = _exposed(scrapes["ingress"])
    for name, labels in _exposed(scrapes["worker"]).items():
        exposed.setdefault(name, set()).update(labels)
    missing, unlabelled = set(), set()
    for query in all_queries():
        for name in query.metrics():
            if not _ours(name, exposed):
                continue
            if name not in exposed:
                missing.add(f"{name} ({query.where})")
            elif exposed[name]:  # labels seen on samples: the ones selected must be among them
                # job, instance and namespace are the target's, added by Prometheus
                asked = query.selected_labels().get(name, set()) - {"job", "instance", "namespace"}
                for label in asked - exposed[name]:
                    unlabelled.add(f"{name} has no label {label} ({query.where})")
    assert not missing, f"not in the scrape: {sorted(missing)}"
    assert not unlabelled, sorted(unlabelled)


def _ours(name: str, exposed: dict[str, set[str]]) -> bool:
    """A metric of ours, unless one being added by processor/metrics.py (see promql.py)."""
    return name.startswith("zenoti_events_") and (name not in PENDING_METRICS or name in exposed)


def _samples(text: str, name: str) -> list[dict[str, str]]:
    return [sample.labels for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name and sample.value > 0]


def test_the_flow_left_its_marks(scrapes: dict[str, str]) -> None:
    """The scrape is not an empty one: deliveries were accepted and handled, the API called."""
    deliveries = _samples(scrapes["ingress"], "zenoti_events_deliveries_total")
    assert {"tenant": "default", "outcome": "accepted", "status": "202"} in deliveries
    assert _samples(scrapes["worker"], "zenoti_events_messages_total")
    assert _samples(scrapes["worker"], "zenoti_events_api_calls_total")
    assert _samples(scrapes["worker"], "zenoti_events_api_cache_total")

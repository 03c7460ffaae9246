"""Center snapshots on the real processes, the sandbox over HTTP and the real Redis: a busy
day costs a fraction of a call per event, and a list Zenoti answers in a shape we do not
know costs the point look-ups of before, never a parked event."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import build_deliveries
from processor.dev.sandbox.organisation import Organisation
from tests.conftest import Broker
from tests.faults.harness import redis_url
from tests.integration.amqp import collect, depth, listener, reset
from tests.integration.processes import Stack
from tests.integration.test_end_to_end import ALL, post

pytestmark = pytest.mark.integration

GUESTS, CENTERS, COUNT = 1500, 3, 150


class Busy(Stack):
    """A stack on a 1,500-guest organisation, sharing Redis, with a generous budget."""

    @property
    def env(self) -> dict[str, str]:
        url = redis_url()
        assert url, "needs Redis on 127.0.0.1:6379"
        return {**super().env, "ZENOTI_EVENTS_REDIS_URL": url,
                "ZENOTI_EVENTS_REDIS_PREFIX": f"snap-{uuid.uuid4().hex[:8]}",
                "ZENOTI_EVENTS_API_CALLS_PER_WINDOW": "100000",
                "ZENOTI_EVENTS_API_WINDOW_SECONDS": "1"}


@pytest.fixture
async def stack(broker: Broker) -> AsyncIterator[Busy]:
    await reset(broker.url, ALL)
    running = Busy(broker.url)
    try:
        yield running
    finally:
        running.stop()


def start(stack: Busy, *sandbox: str) -> None:
    stack.sandbox("--guests", str(GUESTS), "--centers", str(CENTERS), "--seed", "1",
                  "--calls-per-window", "100000", "--window-seconds", "1", *sandbox)
    stack.ingress()
    stack.worker()


async def enrich_a_day(stack: Busy) -> tuple[list[dict[str, Any]], int]:
    org = Organisation.generate(1, guests=GUESTS, centers=CENTERS)
    deliveries = build_deliveries(org, COUNT, seed=5, unknown_ratio=0.0)
    async with listener(stack.amqp_url, topology.ENRICHED) as received:
        for delivery in deliveries:
            assert post(stack, delivery.body).status_code == 202
        out = await collect(received, COUNT, timeout=90)
    stats = httpx.get(f"http://127.0.0.1:{stack.sandbox_port}/_sandbox/stats", timeout=5).json()
    return [json.loads(m.body) for m in out], int(stats["calls"])


def worker_metric(stack: Busy, name: str) -> Counter[str]:
    text = httpx.get(f"http://127.0.0.1:{stack.worker_port}/metrics", timeout=5).text
    found: Counter[str] = Counter()
    for labels, value in re.findall(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M):
        found[labels] += int(float(value))
    return found


async def test_a_busy_day_is_enriched_at_a_fraction_of_a_call_per_event(stack: Busy) -> None:
    start(stack)
    events, calls = await enrich_a_day(stack)
    assert len(events) == COUNT
    assert all(e["guest"]["id"] for e in events)
    with_names = sum(1 for e in events if e["guest"]["first_name"])
    assert with_names == COUNT
    # Point look-ups cost 2 to 3 calls an event; the snapshots must cut that by far.
    assert calls < 0.8 * COUNT, calls
    lookups = worker_metric(stack, "zenoti_events_snapshot_lookups_total")
    assert sum(v for k, v in lookups.items() if 'result="hit"' in k) > COUNT / 2, lookups


async def test_a_list_in_an_unknown_shape_falls_back_to_point_look_ups(stack: Busy) -> None:
    start(stack, "--list-key", "center_members=people")
    events, _ = await enrich_a_day(stack)
    assert len(events) == COUNT  # every event enriched all the same
    for lot in ("zenoti.h.membership-freeze.dead", "zenoti.h.guestpass-redeemed.dead",
                "zenoti.h.package-status.dead"):
        assert await depth(stack.amqp_url, lot) == 0
    lookups = worker_metric(stack, "zenoti_events_snapshot_lookups_total")
    assert sum(v for k, v in lookups.items() if 'result="unusable"' in k) >= 1, lookups
    # (series made at 0 at start are there: none of them counted anything)
    assert not any(v for k, v in lookups.items() if "members" in k and "hit" in k), lookups

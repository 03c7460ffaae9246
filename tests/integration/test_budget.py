"""The API budget across processes, and the cache's freshness, on real processes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import build_deliveries
from processor.dev.sandbox.events import membership_freeze
from processor.dev.sandbox.organisation import Organisation
from tests.conftest import Broker
from tests.faults.harness import redis_url
from tests.integration.amqp import collect, listener, reset
from tests.integration.processes import Stack, stack
from tests.integration.test_end_to_end import ALL, OUTPUTS, envelope, post

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_env(monkeypatch: pytest.MonkeyPatch) -> None:
    url = redis_url()
    if url is None:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    monkeypatch.setenv("ZENOTI_EVENTS_REDIS_URL", url)
    monkeypatch.setenv("ZENOTI_EVENTS_REDIS_PREFIX", f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("ZENOTI_EVENTS_RETRY_TIERS", "[0.5, 1, 2, 4]")
    monkeypatch.setenv("ZENOTI_EVENTS_RETRY", '{"max_attempts": 10, "max_age_seconds": 600}')


@pytest.fixture
async def running(broker: Broker, shared_env: None) -> AsyncIterator[Stack]:
    await reset(broker.url, ALL)
    with stack(broker.url) as s:
        yield s


def sandbox_stats(s: Stack) -> dict[str, object]:
    stats: dict[str, object] = httpx.get(
        f"http://127.0.0.1:{s.sandbox_port}/_sandbox/stats", timeout=5).json()
    return stats


async def test_two_workers_sharing_redis_never_exceed_the_organisations_budget(
    running: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_API_CALLS_PER_WINDOW", "10")
    monkeypatch.setenv("ZENOTI_EVENTS_API_WINDOW_SECONDS", "2")
    running.sandbox("--calls-per-window", "10", "--window-seconds", "2")
    running.ingress()
    running.worker()
    second = Stack(running.amqp_url, sandbox_port=running.sandbox_port)
    try:
        second.worker()
        deliveries = build_deliveries(Organisation.generate(1), 40, seed=21, unknown_ratio=0.0)
        async with listener(running.amqp_url, topology.ENRICHED) as received:
            started = time.monotonic()
            for delivery in deliveries:
                assert post(running, delivery.body).status_code == 202
            out = await collect(received, len(deliveries), timeout=90)
            elapsed = time.monotonic() - started
    finally:
        second.stop()
    stats = sandbox_stats(running)
    assert len(out) == len(deliveries), (len(out), elapsed, stats)
    assert stats["throttled"] == 0, stats
    calls = stats["calls"]
    assert isinstance(calls, int) and calls <= 10 + 5 * elapsed + 1, (calls, elapsed)
    print(f"\n40 events, 2 workers: {calls} calls ({calls / 40:.2f}/event) in {elapsed:.1f} s, "
          "0 throttled")


async def test_a_freeze_after_an_unfreeze_of_the_same_membership_sees_fresh_state(
    running: Stack,
) -> None:
    running.sandbox()
    running.ingress()
    running.worker()
    org = Organisation.generate(1)
    member = next(m for m in org.memberships if m.freeze is not None)
    change = f"http://127.0.0.1:{running.sandbox_port}/_sandbox/memberships/{member.id}"
    first = membership_freeze(org, member)
    async with listener(running.amqp_url, topology.ENRICHED, OUTPUTS[
            "Guest.Membership.Freeze"]) as received:
        assert post(running, envelope("Guest.Membership.Freeze", first, "f-1")).status_code == 202
        [before] = await collect(received, 1)
        httpx.post(change, json={"recurrence_status": 1, "freeze": None}, timeout=5)
        unfreeze = {k: v for k, v in first.items() if k != "freeze"}
        assert post(running, envelope("Guest.Membership.Unfreeze", unfreeze, "u-1")
                    ).status_code == 202
        refrozen = {"start_date": "2026-12-01T00:00:00", "end_date": "2026-12-31T00:00:00",
                    "type": 3, "fee": 0}
        httpx.post(change, json={"recurrence_status": 3, "freeze": refrozen}, timeout=5)
        second = {**first, "freeze": {**refrozen, "fee_type": 1}}
        assert post(running, envelope("Guest.Membership.Freeze", second, "f-2")).status_code == 202
        [after] = await collect(received, 1)
    assert json.loads(before.body)["membership"]["freeze"]["start_date"] != refrozen["start_date"]
    assert json.loads(after.body)["membership"]["freeze"]["start_date"] == refrozen["start_date"]



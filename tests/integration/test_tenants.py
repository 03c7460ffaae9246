"""Tenants are isolated end to end: the same event ids sent to two organisations are two
events everywhere (ingress de-duplication, worker de-duplication, output ids), on the real
processes, broker and Redis."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import build_deliveries
from processor.dev.sandbox.organisation import Organisation
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, collect, listener, reset
from tests.integration.processes import SECRET, Stack

pytestmark = pytest.mark.integration

ACME_SECRET = "acme-webhook-secret"
COUNT = 60


class TwoTenants(Stack):
    """The default tenant and ``acme``, sharing one Redis for de-duplication."""

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "ZENOTI_EVENTS_TENANTS": json.dumps(
                {"acme": {"webhook_secrets": [ACME_SECRET], "api_key": "e2e-api-key"}}),
            "ZENOTI_EVENTS_REDIS_URL": "redis://127.0.0.1:6379/0",
            "ZENOTI_EVENTS_REDIS_PREFIX": f"tenants-{uuid.uuid4().hex[:8]}",
            "ZENOTI_EVENTS_API_CALLS_PER_WINDOW": "100000",
            "ZENOTI_EVENTS_API_WINDOW_SECONDS": "1",
        }


@pytest.fixture
async def running(broker: Broker) -> AsyncIterator[TwoTenants]:
    await reset(broker.url, TEST_BINDINGS)
    stack = TwoTenants(broker.url)
    try:
        stack.sandbox("--calls-per-window", "100000", "--window-seconds", "1")
        stack.ingress()
        stack.worker()
        yield stack
    finally:
        stack.stop()


async def test_the_same_deliveries_to_two_tenants_are_all_enriched_for_each(
    running: TwoTenants,
) -> None:
    deliveries = build_deliveries(Organisation.generate(1), COUNT, seed=11, unknown_ratio=0.0)
    async with listener(running.amqp_url, topology.ENRICHED) as received:
        async with httpx.AsyncClient(timeout=10) as http:
            for delivery in deliveries:
                for path, secret in (("", SECRET), ("/acme", ACME_SECRET)):
                    answer = await http.post(running.webhook_url + path, content=delivery.body,
                                             headers=delivery.headers(secret))
                    assert answer.status_code == 202, answer.text
        out = await collect(received, 2 * COUNT)
    per_tenant = Counter(json.loads(m.body)["tenant"] for m in out)
    assert per_tenant == {"default": COUNT, "acme": COUNT}
    assert len({m.message_id for m in out}) == 2 * COUNT
    assert all((m.message_id or "").startswith(json.loads(m.body)["tenant"] + ":") for m in out)

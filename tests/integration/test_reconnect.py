"""After the broker drops its connections or restarts, the ingress and the worker come back by
themselves, and messages flow again (not only a connection: consumers re-attached). The
restart is that of a private node (``private_broker``), never of the local broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from processor.broker import topology
from tests.conftest import Broker
from tests.integration.amqp import collect, listener, reset
from tests.integration.processes import Stack, stack, wait_ready
from tests.integration.test_end_to_end import ALL, OUTPUTS, one_of_each_kind, post

pytestmark = pytest.mark.integration


@pytest.fixture
async def running(broker: Broker) -> AsyncIterator[Stack]:
    if not broker.vhost:
        pytest.skip("needs the local broker and rabbitmqctl to break connections")
    async for s in _running(broker):
        yield s


@pytest.fixture
async def running_private(private_broker: Broker) -> AsyncIterator[Stack]:
    async for s in _running(private_broker):
        yield s


async def _running(broker: Broker) -> AsyncIterator[Stack]:
    await reset(broker.url, ALL)
    with stack(broker.url) as s:
        s.sandbox()
        s.ingress()
        s.worker()
        yield s


async def assert_flows(running: Stack, seed: int) -> None:
    deliveries = one_of_each_kind(seed)
    async with listener(running.amqp_url, topology.ENRICHED) as received:
        for delivery in deliveries:
            assert post_until_accepted(running, delivery.body) == 202
        out = await collect(received, len(deliveries), timeout=30)
    assert {m.routing_key for m in out} == set(OUTPUTS.values())


def post_until_accepted(running: Stack, body: bytes, timeout: float = 30.0) -> int:
    """Resend on 503, as Zenoti would (bounded)."""
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        status = post(running, body).status_code
        if status != 503:
            return status
        time.sleep(0.2)
    return status


def wait_worker_ready(running: Stack) -> None:
    wait_ready(f"http://127.0.0.1:{running.worker_port}/readyz", timeout=60)


async def test_consumers_come_back_after_the_broker_drops_every_connection(
    running: Stack, broker: Broker
) -> None:
    await assert_flows(running, seed=1)
    broker.close_connections()
    time.sleep(0.5)
    wait_worker_ready(running)
    await assert_flows(running, seed=2)


async def test_everything_recovers_after_a_broker_restart(
    running_private: Stack, private_broker: Broker
) -> None:
    running, node = running_private, private_broker.node
    assert node is not None
    await assert_flows(running, seed=3)
    node.stop_app()
    try:
        ready = httpx.get(f"http://127.0.0.1:{running.ingress_port}/readyz", timeout=5)
        assert ready.status_code == 503
    finally:
        node.start_app()
    wait_ready(f"http://127.0.0.1:{running.ingress_port}/readyz", timeout=60)
    wait_worker_ready(running)
    await assert_flows(running, seed=4)

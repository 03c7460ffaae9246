"""A confirm late in a broker alarm, end to end on a real ingress process and a private node:
the delivery is answered 503 while the memory alarm holds its confirm; once the alarm clears
the broker confirms it after all, and Zenoti's resend of the same delivery is answered 200
duplicate, so exactly one copy is queued (not two, not none)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import Delivery
from tests.conftest import Broker
from tests.integration.amqp import channel, depth, drain, reset
from tests.integration.processes import SECRET, Stack
from tests.integration.test_end_to_end import ALL, one_of_each_kind

pytestmark = [pytest.mark.integration, pytest.mark.fault]

KEPT = "test.late.kept"
CONFIRM_TIMEOUT = 1.0


class ShortConfirm(Stack):
    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "ZENOTI_EVENTS_CONFIRM_TIMEOUT": str(CONFIRM_TIMEOUT)}


@pytest.fixture
async def ingress(private_broker: Broker) -> AsyncIterator[Stack]:
    url = private_broker.url
    await reset(url, ALL)
    running = ShortConfirm(url)
    try:
        running.ingress()
        async with channel(url) as ch:  # every event the ingress publishes, kept
            await ch.queue_delete(KEPT)
            exchange = await ch.get_exchange(topology.EVENTS)
            queue = await ch.declare_queue(KEPT, durable=True,
                                           arguments={"x-queue-type": "quorum"})
            await queue.bind(exchange, "#")
        yield running
    finally:
        running.stop()
        # Its "#" binding would route every later test's unknown types here, not to
        # zenoti.unrouted, and their accounting would count them lost.
        async with channel(url) as ch:
            await ch.queue_delete(KEPT)


def send(running: Stack, delivery: Delivery) -> httpx.Response:
    return httpx.post(running.webhook_url, content=delivery.body,
                      headers=delivery.headers(SECRET), timeout=30)


async def test_a_confirm_late_in_an_alarm_makes_the_resend_a_duplicate(
    ingress: Stack, private_broker: Broker
) -> None:
    node, url = private_broker.node, private_broker.url
    assert node is not None
    delivery = one_of_each_kind(21)[0]

    await asyncio.to_thread(node.alarm_memory)
    try:
        first = await asyncio.to_thread(send, ingress, delivery)
        assert first.status_code == 503, first.text
        assert first.headers.get("Retry-After")
    finally:
        await asyncio.to_thread(node.clear_alarms)

    # The broker takes the held publish and confirms it; the ingress remembers its key.
    deadline = time.monotonic() + 30
    while await depth(url, KEPT) < 1:
        assert time.monotonic() < deadline, "the held message was never queued"
        await asyncio.sleep(0.2)
    await asyncio.sleep(3.0)  # the confirm follows the enqueue within milliseconds (unloaded)

    resend = await asyncio.to_thread(send, ingress, delivery)
    assert resend.status_code == 200, resend.text
    assert resend.json()["status"] == "duplicate"

    await asyncio.sleep(1.0)
    kept = await drain(url, KEPT, expect=2, timeout=3)
    assert len(kept) == 1, [m.message_id for m in kept]
    assert kept[0].body == delivery.body

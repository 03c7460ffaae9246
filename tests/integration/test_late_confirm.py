"""A confirm that arrives after the caller was told ``BrokerUnavailable`` is reported through
``on_late_confirm``, so a 503 answered for a message the broker did queue can be made good.

Lateness is made honestly without alarming the shared broker: a confirm timeout of 1 us
expires before any confirm can come back, and the real confirm arrives afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from processor.errors import BrokerUnavailable
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.publisher import ConfirmedPublisher
from tests.conftest import Broker
from tests.integration.amqp import channel, depth

pytestmark = pytest.mark.integration

QUEUE = "test.publisher.late"
INSTANT = 0.000001


@pytest.fixture
async def publisher(broker: Broker) -> AsyncIterator[ConfirmedPublisher]:
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)
        await ch.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    publishing = ConfirmedPublisher(broker.url, log=get_logger(test="late"), metrics=Metrics(),
                                    late_confirm_wait=10.0)
    await publishing.start()
    yield publishing
    await publishing.close()
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)


class Calls:
    def __init__(self) -> None:
        self.made = asyncio.Event()
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1
        self.made.set()


async def test_a_confirm_after_the_timeout_calls_on_late_confirm(
    publisher: ConfirmedPublisher, broker: Broker,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable, match="no confirm within"):
        await publisher.publish("", QUEUE, b"late", message_id="k1", confirm_timeout=INSTANT,
                                on_late_confirm=late)
    assert late.count == 0, "called before the caller was answered"
    async with asyncio.timeout(10):
        await late.made.wait()
    assert late.count == 1
    assert await depth(broker.url, QUEUE) == 1


async def test_a_message_the_broker_returns_is_never_reported_as_confirmed_late(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable):
        await publisher.publish("", "no.such.queue", b"{}", message_id="k2",
                                confirm_timeout=INSTANT, on_late_confirm=late)
    await asyncio.sleep(1.0)  # the return (then the ack) come back within milliseconds
    assert late.count == 0


async def test_a_confirm_in_time_does_not_call_on_late_confirm(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    await publisher.publish("", QUEUE, b"{}", message_id="k3", on_late_confirm=late)
    await asyncio.sleep(0.2)
    assert late.count == 0


async def test_closing_the_publisher_while_a_late_confirm_is_awaited_is_clean(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable):
        await publisher.publish("", QUEUE, b"{}", message_id="k4", confirm_timeout=INSTANT,
                                on_late_confirm=late)
    async with asyncio.timeout(5):
        await publisher.close()  # whether the confirm came back first or not
    assert late.count <= 1

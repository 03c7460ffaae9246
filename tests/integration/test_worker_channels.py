"""The broker closing one handler's channel restarts that handler's consumer only: the other
handlers keep their channel and consumer, and keep consuming throughout."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

import pytest
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel

from processor import Context, Event
from processor.broker import topology
from processor.broker.protocols import IncomingMessage
from processor.broker.topology import Binding, queue_name
from processor.settings import Settings
from processor.wiring import WorkerProcess
from processor.worker.dispatch import Dispatcher
from tests.conftest import Broker
from tests.integration.amqp import channel, reset
from tests.integration.inprocess import Item, send, settings_for, worker

pytestmark = pytest.mark.integration

BINDINGS = [Binding("alpha", ("Test.Alpha",)), Binding("beta", ("Test.Beta",))]


class Alpha:
    name: ClassVar[str] = "alpha"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Alpha",)
    schema: ClassVar[type[BaseModel]] = Item
    handled: ClassVar[list[str]] = []

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        type(self).handled.append(event.key)


class Beta(Alpha):
    name: ClassVar[str] = "beta"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Beta",)
    handled: ClassVar[list[str]] = []


class AckingAnUnknownTag(Dispatcher):
    """Alpha's dispatcher, except that the first ``break`` message acks a delivery tag its
    channel never had: the broker closes that channel with ``PRECONDITION_FAILED``."""

    broke = False

    async def __call__(self, message: IncomingMessage) -> None:
        assert isinstance(message, AbstractIncomingMessage)  # aio-pika's, with its channel
        if message.message_id == "break" and not AckingAnUnknownTag.broke:
            AckingAnUnknownTag.broke = True
            await message.channel.basic_ack(delivery_tag=1_000_000)
            return  # unacked: the broker requeues it when it closes the channel
        await super().__call__(message)


def running_worker(settings: Settings) -> contextlib.AbstractAsyncContextManager[WorkerProcess]:
    return worker(settings, [Alpha(), Beta()], kinds={"alpha": AckingAnUnknownTag})


def consumer_tags(broker: Broker) -> dict[str, str]:
    """Queue -> consumer tag, as the broker's own node lists them."""
    assert broker.vhost, "needs a broker of ours (local or private) to list consumers"
    listed = broker.ctl("list_consumers", "-p", broker.vhost, "--no-table-headers",
                        "queue_name", "consumer_tag")
    return dict(line.split("\t") for line in listed.splitlines() if "\t" in line)


async def until(condition: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_a_channel_the_broker_closes_restarts_only_that_handlers_consumer(
    broker: Broker,
) -> None:
    if not broker.vhost:
        pytest.skip("needs the local broker and rabbitmqctl to list consumers")
    await reset(broker.url, BINDINGS)
    Alpha.handled.clear()
    Beta.handled.clear()
    async with running_worker(settings_for(broker.url, reconnect_max_delay=0.5)):
        before = consumer_tags(broker)
        assert set(before) == {queue_name("alpha"), queue_name("beta")}

        await send(broker.url, "Test.Alpha", "break", {"n": 0})
        for n in range(20):  # beta's deliveries go on while alpha's channel is down
            await send(broker.url, "Test.Beta", f"b{n}", {"n": n})
            await asyncio.sleep(0.03)
        await until(lambda: "break" in Alpha.handled and len(Beta.handled) == 20)
        await send(broker.url, "Test.Alpha", "after", {"n": 1})
        await until(lambda: "after" in Alpha.handled)
        after = consumer_tags(broker)

    assert AckingAnUnknownTag.broke, "alpha's channel was never closed by the broker"
    assert after[queue_name("beta")] == before[queue_name("beta")], "beta's consumer restarted"
    assert after[queue_name("alpha")] != before[queue_name("alpha")], "alpha did not reconsume"
    assert Beta.handled == [f"b{n}" for n in range(20)]


async def test_a_consumer_the_broker_cancels_comes_back_once_its_queue_does(
    broker: Broker,
) -> None:
    await reset(broker.url, BINDINGS)
    Alpha.handled.clear()
    Beta.handled.clear()
    async with running_worker(settings_for(broker.url, reconnect_max_delay=0.5)):
        async with channel(broker.url) as ch:
            await ch.queue_delete(queue_name("alpha"))  # the broker cancels alpha's consumer
            await asyncio.sleep(0.5)
            await topology.declare(ch, BINDINGS)
        await send(broker.url, "Test.Alpha", "back", {"n": 0})
        await send(broker.url, "Test.Beta", "still", {"n": 0})
        await until(lambda: "back" in Alpha.handled and "still" in Beta.handled)

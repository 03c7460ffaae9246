"""The harness that breaks brokers (``tests/rabbit.py``) on its own: a private node keeps a
durable message through a restart and a crash, its memory alarm holds a publisher's confirm
until cleared, and it leaves nothing behind, not even when it cannot start."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from tests.conftest import Broker
from tests.rabbit import NodeError, PrivateNode, SharedBrokerWatch, find_scripts

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_scripts() is None and not os.environ.get("CI"),
                                 reason="no rabbitmq-server here")]

QUEUES = {"kept.quorum": "quorum", "kept.classic": "classic"}


@asynccontextmanager
async def channel(url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        yield await connection.channel()  # publisher confirms on


async def publish_kept(url: str) -> None:
    async with channel(url) as ch:
        for name, kind in QUEUES.items():
            await ch.queue_delete(name)
            await ch.declare_queue(name, durable=True, arguments={"x-queue-type": kind})
            await ch.default_exchange.publish(
                aio_pika.Message(name.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=name, timeout=10)


async def kept(url: str, timeout: float = 60.0) -> dict[str, bytes | None]:
    """The first message of each queue (left there). After a crash a quorum queue answers
    once its log is recovered and it has elected itself leader again: a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await _first_of_each(url)
        except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _first_of_each(url: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    async with channel(url) as ch:
        for name in QUEUES:
            queue = await ch.get_queue(name)
            message = await queue.get(fail=False, no_ack=False, timeout=5)
            out[name] = None if message is None else message.body
            if message is not None:
                await message.reject(requeue=True)
    return out


EXPECTED = {name: name.encode() for name in QUEUES}


async def test_durable_messages_survive_a_restart_and_the_watch_sees_it(
    private_broker: Broker
) -> None:
    node = private_broker.node
    assert node is not None
    await publish_kept(private_broker.url)
    watch = SharedBrokerWatch.take(node.url_for(private_broker.vhost or "/"), status=node.status)
    assert watch is not None
    pid = await asyncio.to_thread(node.os_pid)

    await asyncio.to_thread(node.restart)

    assert await kept(private_broker.url) == EXPECTED
    assert await asyncio.to_thread(node.os_pid) == pid, "stop_app/start_app keeps the VM"
    changes = await asyncio.to_thread(watch.changes)
    assert [c for c in changes if c.startswith("sentinel connection closed")], changes
    assert not [c for c in changes if c.startswith("pid")], changes


async def test_a_node_stopped_or_crashed_starts_again_over_its_data_and_leaves_nothing(
) -> None:
    node = PrivateNode()
    with node:
        assert node.dir is not None
        home = node.dir
        await publish_kept(node.url)
        pid = await asyncio.to_thread(node.os_pid)

        await asyncio.to_thread(node.restart, hard=True)  # a new OS process, same data
        assert await kept(node.url) == EXPECTED
        assert await asyncio.to_thread(node.os_pid) != pid

        # A crash: SIGKILL to the process group, no shutdown at all. (Not right after the
        # quorum queue is declared: RabbitMQ 3.10 saves its Ra registration lazily, so a
        # queue declared seconds before a SIGKILL does not come back. A clean stop saves it.)
        await asyncio.to_thread(node.kill)
        assert not node.running
        await asyncio.to_thread(node.start)
        assert await kept(node.url) == EXPECTED
        last = await asyncio.to_thread(node.os_pid)
    assert not home.exists()
    assert not _alive(last)


async def test_a_memory_alarm_holds_the_confirm_until_cleared(private_broker: Broker) -> None:
    node = private_broker.node
    assert node is not None
    async with channel(private_broker.url) as ch:
        await ch.queue_delete("held")
        queue = await ch.declare_queue("held", durable=True)
        await asyncio.to_thread(node.alarm_memory)
        publishing = asyncio.create_task(ch.default_exchange.publish(
            aio_pika.Message(b"held", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="held", timeout=60))
        await asyncio.sleep(2.0)
        assert not publishing.done(), "the broker confirmed during a memory alarm"

        cleared = time.monotonic()
        await asyncio.to_thread(node.clear_alarms)
        await asyncio.wait_for(publishing, 15)
        assert time.monotonic() - cleared < 15
        message = await queue.get(fail=False)
        assert message is not None and message.body == b"held"
        await message.ack()


def test_a_node_that_cannot_start_says_why_and_leaves_nothing() -> None:
    node = PrivateNode(config="listeners.tcp.2 = not-an-address\n", start_timeout=60)
    with pytest.raises(NodeError) as raised:
        node.__enter__()
    assert "stdout.log" in str(raised.value) or "node.log" in str(raised.value), raised.value
    assert node.dir is None and not node.running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

"""Small helpers over aio-pika for the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from processor.broker import topology
from processor.broker.stream import ARCHIVE
from processor.broker.topology import Binding, delay_queue_name
from processor.settings import Settings

DEFAULT_TIERS = Settings.model_fields["retry_tiers"].get_default(call_default_factory=True)

TEST_BINDINGS = [
    Binding("membership-freeze", ("Guest.Membership.Freeze",)),
    Binding("guestpass-redeemed", ("Guestpass.redeemed",)),
    Binding("package-status", ("Guest.Package.StatusUpdate",)),
]


@contextlib.asynccontextmanager
async def channel(url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        yield await connection.channel()


async def reset(url: str, bindings: list[Binding]) -> None:
    """Delete what the topology declares, so a test starts from nothing."""
    async with channel(url) as ch:
        delays = [delay_queue_name(b.handler, t) for b in bindings for t in DEFAULT_TIERS]
        for name in [topology.UNROUTED, topology.UNCLAIMED, ARCHIVE,
                     *[topology.queue_name(b.handler) for b in bindings],
                     *[topology.dead_queue_name(b.handler) for b in bindings], *delays]:
            await ch.queue_delete(name)
        for name in (topology.INGRESS, topology.PARKED, topology.EVENTS, topology.UNROUTED,
                     topology.DEAD, topology.ENRICHED, topology.UNCLAIMED):
            await ch.exchange_delete(name)


async def drain(url: str, queue: str, expect: int, timeout: float = 20.0) -> list[
    AbstractIncomingMessage
]:
    """Take up to ``expect`` messages from ``queue`` (acking them), waiting up to ``timeout``."""
    got: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout
    async with channel(url) as ch:
        q = await ch.get_queue(queue)
        while len(got) < expect and time.monotonic() < deadline:
            message = await q.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            got.append(message)
    return got


async def depth(url: str, queue: str) -> int:
    async with channel(url) as ch:
        declared = await ch.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def until_depth(url: str, queue: str, expect: int, timeout: float = 15.0) -> None:
    """Wait until ``queue`` holds ``expect`` ready messages (dead-lettering is asynchronous:
    a rejected message reaches its lot a moment later); ``AssertionError`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (found := await depth(url, queue)) != expect:
        assert asyncio.get_running_loop().time() < deadline, f"{queue}: {found} != {expect}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def listener(url: str, exchange: str, key: str = "#") -> AsyncIterator[
    asyncio.Queue[AbstractIncomingMessage]
]:
    """Collect everything published to ``exchange`` while the context is open."""
    received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    async with channel(url) as ch:
        ex = await ch.get_exchange(exchange)
        q = await ch.declare_queue(exclusive=True, auto_delete=True)
        await q.bind(ex, routing_key=key)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            await received.put(message)

        await q.consume(on_message)
        yield received


async def collect(received: asyncio.Queue[AbstractIncomingMessage], n: int,
                  timeout: float = 30.0) -> list[AbstractIncomingMessage]:
    out: list[AbstractIncomingMessage] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while len(out) < n:
                out.append(await received.get())
    return out

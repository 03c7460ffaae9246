"""The archive stream ``zenoti.archive``: its retention, its declaration, and reading it.

A RabbitMQ stream is an append-only log: reading never removes a message, and every message
has an *offset* (0, 1, 2, ... in arrival order; the oldest go when retention drops whole
segments, so the first offset grows). Over AMQP 0.9.1 a stream is read by a consumer with
``basic.qos`` (a prefetch is required) and manual acks (an ack only gives credit back), from
the position ``x-stream-offset`` names: ``"first"``, ``"last"`` (the last chunk), ``"next"``,
an offset, or a timestamp (the first chunk written at or after it, to the second; a chunk
holds the messages written together, so a few older ones may come first). Each delivery
carries its offset in the ``x-stream-offset`` header. AMQP has no "end of stream": ``read``
stops once no message came for ``idle`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

from processor.logs import get_logger
from processor.settings import Settings

ARCHIVE = "zenoti.archive"
OFFSET_HEADER = "x-stream-offset"
Offset = str | int | datetime
_ACK_EVERY = 200  # acks are credit only: one for many messages (multiple=True)
FIRST_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How long and how much of the archive is kept: ``max_age`` as RabbitMQ writes it
    (``7D``, ``36h``), ``max_bytes`` in all, in segments of ``segment_bytes`` (the broker
    deletes whole segments, the oldest first, once one is past either bound)."""

    max_age: str = "7D"
    max_bytes: int = 10 * 1024**3
    segment_bytes: int = 100 * 1024**2

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        """What ``ARCHIVE_MAX_AGE``, ``ARCHIVE_MAX_BYTES`` and ``ARCHIVE_SEGMENT_BYTES`` say."""
        return cls(settings.archive_max_age, settings.archive_max_bytes,
                   settings.archive_segment_bytes)

    def arguments(self) -> FieldTable:
        """The stream's queue arguments."""
        return {"x-queue-type": "stream", "x-max-age": self.max_age,
                "x-max-length-bytes": self.max_bytes,
                "x-stream-max-segment-size-bytes": self.segment_bytes}


async def declare_stream(channel: AbstractChannel, name: str,
                         retention: Retention) -> AbstractQueue:
    """The stream ``name``, made with ``retention`` if it does not exist. One that exists with
    another retention keeps it (a policy changes it: docs/operations.md, "The archive"), and
    that is logged as ``archive.retention_differs``, never raised: retention must not stop
    deliveries. Declared on a channel of its own, which such a mismatch closes: ``channel``
    stays open."""
    underlay = await channel.get_underlay_channel()
    probe = await underlay.connection.channel(publisher_confirms=False)
    try:
        await probe.queue_declare(name, durable=True, arguments=retention.arguments())
    except ChannelPreconditionFailed as exc:
        reply = str(exc.args[0]) if exc.args else ""
        if "inequivalent arg" not in reply or f"'{name}'" not in reply:
            raise
        get_logger(component="topology").warning(
            "archive.retention_differs", reply=reply[:300],
            detail="the stream keeps its own; a policy changes it (docs/operations.md)")
    finally:
        if not probe.is_closed:
            await probe.close()
    return await channel.get_queue(name, ensure=False)


def offset_of(message: AbstractIncomingMessage) -> int:
    """The stream offset of a delivery (-1 if the broker did not say)."""
    value = (message.headers or {}).get(OFFSET_HEADER)
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


async def read(channel: AbstractChannel, name: str, start: Offset, *, idle: float,
               first: float = FIRST_WAIT,
               prefetch: int = 1000) -> AsyncGenerator[AbstractIncomingMessage, None]:
    """The messages of the stream ``name`` from ``start`` on, in offset order, until none came
    for ``idle`` seconds (the stream has nothing newer) or the caller stops iterating.
    The first is waited for up to ``first`` seconds (10 s; never less than ``idle``): a
    consumer's first delivery waits for the broker to open a reader at ``start``, which took
    over 2 s on a loaded node, and a reading cut there reads nothing at all. So a reading of
    nothing newer than ``start`` takes ``first``.
    ``channel`` is given a prefetch of ``prefetch``: use one for this reading alone."""
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(name, ensure=False)
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    tag = await queue.consume(inbox.put, arguments={OFFSET_HEADER: start})
    taken, every = 0, max(1, min(_ACK_EVERY, prefetch // 2))
    wait = max(first, idle)
    try:
        while True:
            try:
                message = await asyncio.wait_for(inbox.get(), wait)
            except TimeoutError:
                return
            wait = idle
            yield message
            taken += 1
            if taken % every == 0:
                await message.ack(multiple=True)
    finally:
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
            await queue.cancel(tag)

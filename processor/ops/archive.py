"""What the archive holds: its first and last deliveries, and a count by event type.

Read over AMQP, as a consumer of the stream (``processor.broker.stream``): the first delivery
from offset ``first``, the last from the last chunk, and the count from ``since`` (or the
first) for at most ``limit`` deliveries or until one received at ``until`` or later. Times
are the deliveries' ``received_at`` headers: AMQP 0.9.1 does not show a stream's own chunk
times. Nor its size on disk: ``Stats`` sums the bodies it counted, and estimates the whole
from their mean (headers and the stream's framing add a little; ``du`` on the node's
``stream`` directory gives the size on disk).

``connection`` is the one way the archive commands reach the broker; ``handler_bindings``,
``find`` and ``run_replay`` are what both ``zenoti-events replay`` and the console use.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from processor.broker import stream, topology
from processor.broker.connect import connect
from processor.broker.stream import ARCHIVE, Offset
from processor.logs import get_logger
from processor.message import MessageMeta
from processor.ops import replay
from processor.settings import Settings
from processor.worker import plugins

PARKED_TYPE = "(parked by the ingress)"


@dataclass(frozen=True, slots=True)
class Edge:
    """One end of the archive: a delivery's offset and when the ingress received it."""

    offset: int
    received_at: datetime | None


@dataclass(slots=True)
class Stats:
    """The archive's ends, and what was counted between ``counted_from`` and ``counted_to``
    (offsets): deliveries per event type (``PARKED_TYPE`` for those the ingress parked), and
    their bodies' bytes. ``cut`` says the count stopped at its limit."""

    first: Edge | None = None
    last: Edge | None = None
    by_type: Counter[str] = field(default_factory=Counter)
    counted_bytes: int = 0
    counted_from: int | None = None
    counted_to: int | None = None
    cut: bool = False

    @property
    def messages(self) -> int:
        """Deliveries in the archive (offsets are consecutive from the first to the last)."""
        if self.first is None or self.last is None:
            return 0
        return self.last.offset - self.first.offset + 1

    @property
    def counted(self) -> int:
        return sum(self.by_type.values())

    @property
    def estimated_bytes(self) -> int:
        """The bodies of every delivery, estimated from the mean of those counted."""
        return round(self.counted_bytes / self.counted * self.messages) if self.counted else 0


async def connection(settings: Settings, name: str) -> AbstractConnection:
    """A connection to the broker for the ``name`` command (``replay``, ``archive``)."""
    return await connect(settings.amqp_url.get_secret_value(), attempt_timeout=10,
                         name=name, log=get_logger(component=name))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One archived delivery, as ``find`` shows it."""

    offset: int
    received_at: datetime | None
    tenant: str | None
    event_type: str | None
    message_id: str | None
    parked: bool


def handler_bindings(settings: Settings) -> list[topology.Binding]:
    """The installed handlers and the types each takes after ``HANDLER_EVENT_TYPES``, as the
    workers bind them: where a replay sends copies."""
    return topology.bindings_for({h.name: h.cls.event_types for h in plugins.discover()},
                                 settings.handler_event_types)


async def run_replay(settings: Settings, plan: replay.Plan, summary: replay.Summary,
                     progress: replay.Progress | None = None) -> replay.Summary:
    """Run ``plan`` on a connection of its own (``replay.replay`` has the contract)."""
    async with await connection(settings, "replay") as conn:
        reading = await conn.channel()
        publishing = await conn.channel(publisher_confirms=True, on_return_raises=True)
        return await replay.replay(reading, publishing, plan, summary, progress)


async def find(connection: AbstractConnection, window: replay.Window, *, limit: int = 100,
               late: float = 300.0, idle: float = 2.0) -> tuple[list[Delivery], bool]:
    """The first ``limit`` deliveries ``window`` selects, read as a replay reads (from
    ``late`` seconds before its start to ``late`` after its end, never past now), and whether
    more were there (reading stops at the first one past ``limit``)."""
    found: list[Delivery] = []
    stop_at = min(window.until + timedelta(seconds=late), datetime.now(UTC))
    channel = await connection.channel()
    async with channel, contextlib.aclosing(stream.read(
            channel, ARCHIVE, window.since - timedelta(seconds=late), idle=idle)) as messages:
        async for message in messages:
            meta = MessageMeta.from_headers(message.headers)
            if meta.received_at is not None and meta.received_at >= stop_at:
                break
            if not window.matches(meta):
                continue
            if len(found) >= limit:
                return found, True
            found.append(Delivery(stream.offset_of(message), meta.received_at, meta.tenant,
                                  meta.event_type, message.message_id, bool(meta.reason)))
    return found, False


async def stats(connection: AbstractConnection, *, since: datetime | None = None,
                until: datetime | None = None, limit: int = 100_000,
                idle: float = 2.0) -> Stats:
    """The archive's ``Stats``: its ends, and a count from ``since`` (else the first) of at
    most ``limit`` deliveries, stopping at the first received at ``until`` or later, or when
    none came for ``idle`` seconds (each reading waits up to ``stream.FIRST_WAIT`` for its
    first). What is received while it reads is not counted (a live archive would never fall
    idle)."""
    began = datetime.now(UTC)
    until = began if until is None else min(until, began)
    found = Stats(first=_edge(await _first(connection, idle)))
    if found.first is None:
        return found  # empty: not two more readings that each wait for a first delivery
    found.last = _edge(await _last(connection, idle, began))
    start: Offset = since if since is not None else "first"
    channel = await connection.channel()
    async with channel, contextlib.aclosing(stream.read(channel, ARCHIVE, start,
                                                        idle=idle)) as messages:
        async for message in messages:
            meta = MessageMeta.from_headers(message.headers)
            if meta.received_at is not None and meta.received_at >= until:
                break
            if since is not None and (meta.received_at is None or meta.received_at < since):
                continue  # from the chunk before: written with ones after ``since``
            if found.counted >= limit:
                found.cut = True
                break
            _count(found, message, meta)
    return found


def _count(found: Stats, message: AbstractIncomingMessage, meta: MessageMeta) -> None:
    kind = PARKED_TYPE if meta.reason else meta.event_type or "(no event type)"
    found.by_type[kind] += 1
    found.counted_bytes += len(message.body)
    offset = stream.offset_of(message)
    found.counted_from = offset if found.counted_from is None else found.counted_from
    found.counted_to = offset


async def _first(connection: AbstractConnection, idle: float) -> AbstractIncomingMessage | None:
    channel = await connection.channel()
    async with channel, contextlib.aclosing(stream.read(channel, ARCHIVE, "first", idle=idle,
                                                        prefetch=1)) as messages:
        async for message in messages:
            return message
    return None


async def _last(connection: AbstractConnection, idle: float,
                began: datetime) -> AbstractIncomingMessage | None:
    """The last delivery received before ``began``: from the last chunk (the stream's
    ``last`` offset) on, until one received after it."""
    last = None
    channel = await connection.channel()
    async with channel, contextlib.aclosing(stream.read(channel, ARCHIVE, "last",
                                                        idle=idle)) as messages:
        async for message in messages:
            received = MessageMeta.from_headers(message.headers).received_at
            if received is not None and received > began:
                break
            last = message
    return last


def _edge(message: AbstractIncomingMessage | None) -> Edge | None:
    if message is None:
        return None
    return Edge(stream.offset_of(message), MessageMeta.from_headers(message.headers).received_at)

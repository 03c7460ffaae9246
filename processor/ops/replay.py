"""Replaying the archive: re-running a window of accepted deliveries through their handlers.

The archive (``zenoti.archive``, ``processor.broker.stream``) is read from the first chunk
written ``late`` seconds before ``since``. Each delivery received (its ``received_at``
header) in ``[since, until)``, of the tenant and event type asked for, is *selected*; a copy
of it goes to the work queue of each handler that takes its type now (the installed
handlers' bindings after ``HANDLER_EVENT_TYPES``), or of the named ones alone, through the
default exchange, persistent and confirmed, at most ``rate`` copies a second. Reading stops at
the first delivery received ``late`` seconds after ``until`` (deliveries reach the stream in
the order they were written: a spooled one up to an outage later, and pods' clocks differ,
so ``late`` is how far that may go), but no later than the first received after the replay
began (it does not wait for the future), or when the stream has nothing newer for ``idle``
seconds (the first delivery is waited for up to ``first``, 10 s: the broker opens its reader
first, and a replay cut there would re-run nothing).

A copy is the archived message (body, message id, content type, headers) with
``x-zenoti-replay-of`` (the archived message's id), ``x-zenoti-replayed-by`` and
``x-zenoti-replayed-at``: the worker runs it even if it handled that event already, and its
outputs keep their stable ids and say ``x-zenoti-replay-of`` (``processor.worker.dispatch``).
Skipped, and counted by reason: deliveries no handler takes (or none of those named), those
the ingress parked itself (not an envelope: ``dlq replay unrouted`` is their way), and a
second copy of one message id among the last ``_REMEMBERED`` sent (the spool's at-least-once
forwarding can archive two, a forwarding window apart: close in the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from processor import message as m
from processor.broker import stream
from processor.broker.stream import ARCHIVE
from processor.broker.topology import Binding, queue_name
from processor.errors import BrokerUnavailable
from processor.message import MessageMeta
from schemas.envelope import routing_key

_REMEMBERED = 100_000  # message ids a replay remembers sending (about 15 MB)


@dataclass(frozen=True, slots=True)
class Window:
    """Which deliveries a replay takes: received in ``[since, until)`` (aware times), of
    ``tenant`` and ``event_type`` (compared case-insensitively) when given."""

    since: datetime
    until: datetime
    tenant: str | None = None
    event_type: str | None = None

    def matches(self, meta: MessageMeta) -> bool:
        received = meta.received_at
        wanted = self.event_type
        return (received is not None and self.since <= received < self.until
                and self.tenant in (None, meta.tenant)
                and (wanted is None or wanted.casefold() == (meta.event_type or "").casefold()))


@dataclass(slots=True)
class Summary:
    """What a replay did: deliveries read and selected, copies per handler (with a dry run:
    that would have been sent), selected deliveries skipped per reason, the offsets read."""

    read: int = 0
    selected: int = 0
    published: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_offset: int | None = None
    last_offset: int | None = None


Progress = Callable[[Summary], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """A replay to run: the window, the handlers' bindings and which of them (``None``:
    every handler that takes a type), who asks, and how."""

    window: Window
    bindings: Sequence[Binding]
    handlers: frozenset[str] | None = None
    by: str = "unknown"
    rate: float = 1.0
    dry_run: bool = False
    late: float = 300.0
    idle: float = 2.0
    confirm_timeout: float = 5.0
    first: float = stream.FIRST_WAIT

    def targets(self, meta: MessageMeta, message: AbstractIncomingMessage) -> list[str]:
        """The handlers a delivery goes to: those whose bindings take its type."""
        # The key the ingress routed it by, kept in the stream: re-deriving it from the
        # header (cut at 1,024 characters) could route a long type elsewhere than live.
        key = message.routing_key or (routing_key(meta.event_type) if meta.event_type else "")
        return [b.handler for b in self.bindings if key in b.routing_keys
                and (self.handlers is None or b.handler in self.handlers)]


async def replay(reading: AbstractChannel, publishing: AbstractChannel, plan: Plan,
                 summary: Summary, progress: Progress | None = None) -> Summary:
    """Run ``plan``, counting into ``summary`` (returned): read on ``reading`` (a channel of
    its own), send on ``publishing`` (with publisher confirms). Raises ``BrokerUnavailable``
    when a copy is not confirmed; ``summary`` then says what was done before."""
    seen = _Recent(_REMEMBERED)
    start = plan.window.since - timedelta(seconds=plan.late)
    stop_at = min(plan.window.until + timedelta(seconds=plan.late), datetime.now(UTC))
    pace = _Pace(plan.rate)
    async with contextlib.aclosing(stream.read(reading, ARCHIVE, start, idle=plan.idle,
                                               first=plan.first)) as messages:
        async for message in messages:
            meta = MessageMeta.from_headers(message.headers)
            if meta.received_at is not None and meta.received_at >= stop_at:
                break
            _count(summary, message)
            if plan.window.matches(meta):
                summary.selected += 1
                await _take(message, meta, plan, summary, seen, pace, publishing)
            if progress is not None:
                progress(summary)
    return summary


def _count(summary: Summary, message: AbstractIncomingMessage) -> None:
    offset = stream.offset_of(message)
    summary.read += 1
    summary.first_offset = offset if summary.first_offset is None else summary.first_offset
    summary.last_offset = offset


async def _take(message: AbstractIncomingMessage, meta: MessageMeta, plan: Plan,
                summary: Summary, seen: _Recent, pace: _Pace,
                publishing: AbstractChannel) -> None:
    """Send one selected delivery to its handlers, or count why not."""
    message_id = message.message_id or f"{ARCHIVE}@{stream.offset_of(message)}"
    targets = plan.targets(meta, message)
    reason = _skipped(meta, targets, message_id in seen)
    if reason:
        summary.skipped[reason] += 1
        return
    seen.add(message_id)
    copy = _copy(message, message_id, plan.by)
    for handler in targets:
        if not plan.dry_run:
            await pace.wait()
            await _publish(publishing, copy, queue_name(handler), plan.confirm_timeout)
        summary.published[handler] += 1


def _skipped(meta: MessageMeta, targets: list[str], again: bool) -> str | None:
    """Why a selected delivery is not sent, if it is not."""
    if meta.reason:
        return "parked by the ingress"
    if not targets:
        return "no handler takes its type"
    return "a second copy in the archive" if again else None


def _copy(message: AbstractIncomingMessage, message_id: str, by: str) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items()
               if k != stream.OFFSET_HEADER and k not in m.BROKER_HEADERS}
    headers.update({m.REPLAY_OF: message_id, m.REPLAYED_BY: by,
                    m.REPLAYED_AT: datetime.now(UTC).isoformat()})
    return aio_pika.Message(message.body, headers=headers, message_id=message.message_id,
                            content_type=message.content_type or "application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def _publish(channel: AbstractChannel, copy: aio_pika.Message, queue: str,
                   confirm_within: float) -> None:
    try:
        await channel.default_exchange.publish(copy, queue, mandatory=True,
                                               timeout=confirm_within)
    except Exception as exc:  # nack, returned (no such queue), timeout, closed channel
        raise BrokerUnavailable(f"{queue}: not confirmed: {type(exc).__name__}") from exc


class _Recent:
    """The last ``size`` texts added, for ``in``."""

    def __init__(self, size: int) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self._size = size

    def __contains__(self, text: str) -> bool:
        return text in self._set

    def add(self, text: str) -> None:
        if len(self._order) >= self._size:
            self._set.discard(self._order.popleft())
        self._order.append(text)
        self._set.add(text)


class _Pace:
    """At most ``rate`` calls of ``wait`` a second, evenly spaced."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self._gap = 1 / rate
        self._next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self._gap

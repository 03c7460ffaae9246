"""Parking lots: browsing, replaying and purging dead letters without harming them.

A lot is a quorum queue (``zenoti.h.<handler>.dead``, ``zenoti.unrouted``). AMQP cannot peek,
and on a quorum queue a get followed by a requeue counts as a delivery (RabbitMQ 4 dead-letters
or drops a message past its delivery limit), so nothing here requeues to look. Every operation
is one *rotation*: read the number N of ready messages (passive declare), then N times
``basic.get`` (manual ack) and *keep* the message (publish an identical copy to the tail of the
same queue through the default exchange, and ack the original only once the copy is
confirmed), *replay* it (the same, to its target) or *purge* it (ack it).

Anything may be in a dead letter's headers (a crafted or foreign message): every header is read
defensively (a value of the wrong type counts as absent), and a copy carries each header as it
came, except that bytes that are not UTF-8 (which the client library decodes as ``bytes`` and
cannot encode again) travel as a byte array.

Kept messages end in their original order; being new messages, their ``x-delivery-count``
never grows. If a publish is not confirmed, the original is nacked back (requeue) and the pass
stops with ``BrokerUnavailable``: each message always exists at least once (a crash between a
confirm and its ack leaves a duplicate). Run one pass per queue at a time: a concurrent
consumer or pass would take messages this one counted (the console holds a lock per lot around
each of its passes; nothing stops a ``zenoti-events dlq`` run at the same moment). ``taken``
says how many the pass under way (or the last one) took so far, also after it failed. A copy
through the default exchange gets the queue's name as routing key, so the first rotation
records the key the message was parked with in ``x-zenoti-routing-key`` (its only change):
replay from unrouted needs it.

Copies are published on the lot's own confirm channel, not through the confirmed publisher
(``processor.broker.publisher``), which sends the messages zenoti-events makes: a copy is a
clone of whatever was parked, every property kept (no content type, no message id, an
expiration, a priority), where the publisher sends only its own persistent ones; its size check
keeps room for headers below the broker's limit, and would stop every pass at a message the
broker itself accepted; and a pass must get, ack and nack on a channel of its own anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, HeadersType

from processor.broker.topology import EVENTS, UNROUTED, dead_queue_name, queue_name
from processor.errors import BrokerUnavailable
from processor.message import (
    ATTEMPT,
    BROKER_HEADERS,
    DEAD_AT,
    DEATHS,
    ERROR,
    FIRST_FAILURE,
    REASON,
    REPLAY_COUNT,
    REPLAYED_AT,
    ROUTING_KEY,
    MessageMeta,
    moment,
    text,
)
from processor.settings import DEFAULT_TENANT
from schemas.envelope import routing_key as routing_key_of

# A replay starts afresh: no death, a new retry clock (else it would give up at once as old).
_DROPPED_ON_REPLAY = BROKER_HEADERS | {REASON, ERROR, DEAD_AT, FIRST_FAILURE, ROUTING_KEY}
# Every property but user_id, which the broker checks against the connection's user.
_PROPERTIES = ("content_type", "content_encoding", "delivery_mode", "priority", "type",
               "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "app_id")
Progress = Callable[[int, int], None]
# Called with each message of a pass; True means it was taken (replayed or purged).
_Take = Callable[[AbstractIncomingMessage, "ParkedMessage"], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """What an operator needs to know about one parked message, read from its headers."""

    message_id: str
    event_type: str
    reason: str
    error: str
    attempts: int
    tenant: str
    dead_at: datetime | None
    received_at: datetime | None
    age: timedelta | None
    routing_key: str
    size: int
    headers: dict[str, Any]
    body: bytes = field(repr=False)

    @classmethod
    def of(cls, message: AbstractIncomingMessage, *, lot: str, routing_key: str,
           now: datetime) -> ParkedMessage:
        """Decode ``message``, parked in the queue ``lot``."""
        headers: dict[str, Any] = dict(message.headers or {})
        meta = MessageMeta.from_headers(headers)
        death = _death(headers, lot)
        default_reason = "unrouted" if lot == UNROUTED else "unknown"
        dead_at = meta.dead_at or moment(death.get("time"))
        since = dead_at or meta.received_at
        return cls(
            message_id=message.message_id or "",
            event_type=meta.event_type or _body_event_type(message.body),
            reason=meta.reason or text(death, "reason") or default_reason,
            error=meta.error or (
                f"{text(death, 'reason')} by the broker in {text(death, 'queue')}"
                if death else ""),
            attempts=meta.attempt, tenant=meta.tenant or DEFAULT_TENANT, dead_at=dead_at,
            received_at=meta.received_at, age=now - since if since else None,
            routing_key=routing_key, size=len(message.body), headers=headers, body=message.body,
        )


@dataclass(frozen=True, slots=True)
class Filter:
    """Which messages an operation applies to; ``None`` matches anything. ``event_type`` is
    compared case-insensitively; ``since`` (inclusive) and ``until`` (exclusive), both aware,
    apply to the dead-letter time, else the receipt time (with neither: outside any window)."""

    event_type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    message_id: str | None = None
    tenant: str | None = None

    def matches(self, message: ParkedMessage) -> bool:
        moment = message.dead_at or message.received_at
        wanted = self.event_type or message.event_type
        return (wanted.casefold() == message.event_type.casefold()
                and self.reason in (None, message.reason)
                and self.message_id in (None, message.message_id)
                and self.tenant in (None, message.tenant)
                and (self.since is None or (moment is not None and moment >= self.since))
                and (self.until is None or (moment is not None and moment < self.until)))

    def describe(self, shown: Callable[[str], str] = str) -> str:
        """The filter as one line for a person or a log (``shown`` renders each value: a
        caller that logs values from a request sanitizes them there)."""
        chosen = [f"{name}={shown(str(value))}" for name, value in (
            ("event type", self.event_type), ("reason", self.reason), ("id", self.message_id),
            ("since", self.since), ("until", self.until), ("tenant", self.tenant))
            if value is not None]
        return ", ".join(chosen) or "every message"


class ParkingLot:
    """One lot (``handler=None``: ``zenoti.unrouted``) over a channel with publisher confirms.

    Replay sends a handler's dead letters straight to its work queue; unrouted ones go through
    ``zenoti.events`` with the key they were parked with, to whichever handler takes them now."""

    def __init__(self, channel: AbstractChannel, handler: str | None, *,
                 confirm_timeout: float = 5.0) -> None:
        self.queue = dead_queue_name(handler) if handler else UNROUTED
        self.exchange = "" if handler else EVENTS
        self.key: str | None = queue_name(handler) if handler else None
        self._channel = channel
        self._timeout = confirm_timeout
        self.taken = 0

    async def browse(self, filter: Filter | None = None, *,
                     progress: Progress | None = None) -> list[ParkedMessage]:
        """Every matching message, in queue order; the queue is left as it was."""
        found: list[ParkedMessage] = []

        async def look(_: AbstractIncomingMessage, parked: ParkedMessage) -> bool:
            if filter is None or filter.matches(parked):
                found.append(parked)
            return False

        await self._pass(look, progress)
        return found

    async def depth(self) -> tuple[int, int]:
        """The lot's ready messages and consumers (a passive declare)."""
        queue = await self._channel.declare_queue(self.queue, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0

    async def look(self, see: Callable[[ParkedMessage], None], *, limit: int) -> bool:
        """Call ``see`` with every message in queue order, the lot left as it was (one
        browsing pass; ``see`` keeps what it needs, nothing else stays in memory); ``False``,
        reading nothing, when the lot holds more than ``limit``."""
        if (await self.depth())[0] > limit:
            return False

        async def keep(_: AbstractIncomingMessage, parked: ParkedMessage) -> bool:
            see(parked)
            return False

        await self._pass(keep, None)
        return True

    async def reasons(self, *, limit: int) -> Counter[str] | None:
        """The lot's messages by reason, the lot left as it was (one browsing pass, no body
        kept); ``None``, reading nothing, when it holds more than ``limit``."""
        found: Counter[str] = Counter()
        seen = await self.look(lambda parked: found.update((parked.reason,)), limit=limit)
        return found if seen else None

    async def replay(self, filter: Filter, *, rate: float, dry_run: bool = False,
                     limit: int | None = None, progress: Progress | None = None) -> int:
        """Send up to ``limit`` matching messages back to be handled, at most ``rate`` per
        second; return how many (with ``dry_run``, how many would be, moving nothing)."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if dry_run:
            count = len(await self.browse(filter, progress=progress))
            return count if limit is None else min(count, limit)
        replayed, next_at = 0, time.monotonic()

        async def send(message: AbstractIncomingMessage, parked: ParkedMessage) -> bool:
            nonlocal replayed, next_at
            if not filter.matches(parked) or (limit is not None and replayed >= limit):
                return False
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self._publish(_copy(message, _replay_headers(message.headers)), self.exchange,
                                self.key or _original_key(parked))
            next_at = time.monotonic() + 1 / rate
            replayed += 1
            return True

        return await self._pass(send, progress)

    async def purge(self, filter: Filter, *, progress: Progress | None = None) -> int:
        """Delete the matching messages for good; return how many."""
        async def drop(_: AbstractIncomingMessage, parked: ParkedMessage) -> bool:
            return filter.matches(parked)

        return await self._pass(drop, progress)

    async def _pass(self, take: _Take, progress: Progress | None) -> int:
        queue = await self._channel.declare_queue(self.queue, passive=True)
        total = queue.declaration_result.message_count or 0
        now, self.taken = datetime.now(UTC), 0
        for done in range(1, total + 1):
            message = await queue.get(fail=False, timeout=self._timeout)
            if message is None:
                break  # someone else took messages meanwhile: nothing left to see
            key = text(message.headers or {}, ROUTING_KEY) or message.routing_key or ""
            parked = ParkedMessage.of(message, lot=self.queue, routing_key=key, now=now)
            try:
                if await take(message, parked):
                    self.taken += 1
                else:
                    await self._publish(_copy(message, {**message.headers,
                                                        ROUTING_KEY: key}), "", self.queue)
            except BrokerUnavailable:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                    await message.nack(requeue=True)  # a closed channel returns it anyway
                raise
            await message.ack()
            if progress:
                progress(done, total)
        return self.taken

    async def _publish(self, message: aio_pika.Message, exchange: str, key: str) -> None:
        try:
            target = (await self._channel.get_exchange(exchange, ensure=False) if exchange
                      else self._channel.default_exchange)
            await target.publish(message, key, mandatory=True, timeout=self._timeout)
        except Exception as exc:  # nack, unroutable return, timeout, closed channel
            where = f"{exchange or '(default exchange)'} / {key}"
            raise BrokerUnavailable(f"{where} not confirmed: {type(exc).__name__}") from exc


def _copy(message: AbstractIncomingMessage, headers: HeadersType) -> aio_pika.Message:
    properties = {name: getattr(message, name) for name in _PROPERTIES}
    encodable = {str(name): _encodable(value) for name, value in headers.items()}
    return aio_pika.Message(message.body, headers=encodable, **properties)


def _encodable(value: Any) -> Any:
    """``value`` as the client library can encode it again (see the module)."""
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {str(name): _encodable(item) for name, item in value.items()}
    return value


def _replay_headers(headers: HeadersType) -> HeadersType:
    kept = {key: value for key, value in headers.items() if key not in _DROPPED_ON_REPLAY
            and not key.startswith(("x-first-death-", "x-last-death-"))}
    previous = headers.get(REPLAY_COUNT)
    count = previous if isinstance(previous, int) and not isinstance(previous, bool) else 0
    return {**kept, ATTEMPT: 1, REPLAYED_AT: datetime.now(UTC).isoformat(),
            REPLAY_COUNT: max(count, 0) + 1}


def _original_key(parked: ParkedMessage) -> str:
    # A message put into the lot by hand has no key of its own: its event type gives one.
    # A recorded key that AMQP could not carry (over 255 bytes) was not a real one either.
    key = parked.routing_key
    usable = key not in ("", UNROUTED) and len(key.encode(errors="replace")) <= _MAX_KEY
    return key if usable else routing_key_of(parked.event_type)


_MAX_KEY = 255  # bytes in an AMQP short string


def _death(headers: dict[str, Any], lot: str) -> dict[str, Any]:
    # A lot dead-letters into itself: the death that parked a message happened elsewhere.
    recorded = headers.get(DEATHS)
    deaths = [dict(d) for d in recorded if isinstance(d, dict)] if isinstance(
        recorded, list | tuple) else []
    return next((d for d in deaths if d.get("queue") != lot), deaths[0] if deaths else {})


def _body_event_type(body: bytes) -> str:
    # A body nested too deeply for the parser is not an envelope either.
    with contextlib.suppress(ValueError, AttributeError, TypeError, RecursionError):
        return text(json.loads(body), "event_type") or ""
    return ""

"""An in-memory broker, enough to run a ``Dispatcher`` for real in a unit test.

``MemoryBroker(bindings, retry_tiers=...)`` holds what ``processor.broker.topology.declare``
declares, with the routing dispatch depends on:

- ``zenoti.events`` (topic) routes to the work queues ``zenoti.h.<handler>`` bound to the key;
  no match goes to ``zenoti.unrouted`` (its alternate exchange). ``""`` routes to the queue
  named by the key.
- ``zenoti.h.<handler>.retry.<tier>`` keeps a message for the tier's TTL on the broker's own
  clock, which moves only in ``advance``; then dead-letters it back to the work queue.
- ``zenoti.dead`` (direct) routes ``zenoti.h.<handler>`` and ``zenoti.h.<handler>.dead`` to the
  parking lot ``zenoti.h.<handler>.dead``; a work queue dead-letters what is rejected there.
- ``zenoti.enriched`` (topic) routes to the queues a test ``bind``s, else to
  ``zenoti.enriched.unclaimed`` (its alternate exchange).

Dead-lettering (TTL expiry; ``nack``/``reject`` without requeue) adds an ``x-death`` entry
(queue, reason, count, exchange, routing keys, wall-clock time), as RabbitMQ does.

``publisher`` is a ``Publisher`` (``memory_client.MemoryPublisher``): a publish returns once
the message is queued (the confirm); one nobody routes (``""`` with a key naming no queue) is
returned and raises ``BrokerUnavailable``, as with the confirmed publisher. ``publisher.fail``
makes coming publishes raise ``BrokerUnavailable`` or ``PublishRefused`` and queue nothing.

``deliver(queue, consumer)`` hands the ready messages to ``consumer`` one at a time, as
``IncomingMessage``s to settle exactly once (a second settlement raises aio-pika's
``MessageProcessError``): ``ack`` forgets one; ``nack``/``reject`` with requeue put it back at
the head, redelivered, ``x-delivery-count`` + 1; without requeue its queue dead-letters it.

Not modelled: the quorum delivery limit (``deliver`` stops at ``limit`` instead), prefetch and
concurrent consumers, channels and connections (closing one returns nothing: see ``unsettled``),
message size and AMQP encoding limits (the confirmed publisher's own ``PublishRefused``
checks), late confirms, per-message TTL, ``x-first-death-*`` and ``x-last-death-*``,
persistence, queue length limits and any alternate exchange but the two above.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from processor.broker.memory_client import MemoryMessage, MemoryPublisher, Queued
from processor.broker.protocols import Headers, IncomingMessage
from processor.broker.topology import (
    DEAD,
    ENRICHED,
    EVENTS,
    UNCLAIMED,
    UNROUTED,
    Binding,
    dead_queue_name,
    delay_queue_name,
    queue_name,
)
from processor.message import DEATHS, DELIVERY_COUNT

Consumer = Callable[[IncomingMessage], Awaitable[None]]


@dataclass(slots=True)
class _Queue:
    name: str
    dead_letter: tuple[str, str] | None  # exchange and routing key
    ttl: float | None = None
    ready: deque[tuple[float, Queued]] = field(default_factory=deque)  # (expires at, message)


@dataclass(slots=True)
class _Exchange:
    kind: str  # "topic", "direct" or "fanout"
    alternate: str | None = None
    bindings: list[tuple[str, str]] = field(default_factory=list)  # (pattern, queue)

    def queues(self, key: str) -> list[str]:
        return [queue for pattern, queue in self.bindings if self.kind == "fanout"
                or (pattern == key if self.kind == "direct"
                    else _topic_matches(pattern.split("."), key.split(".")))]


class MemoryBroker:
    """Exchanges and queues of the topology for ``bindings``, in memory (see the module)."""

    def __init__(self, bindings: Sequence[Binding] = (), *,
                 retry_tiers: Sequence[float] = ()) -> None:
        self.now = 0.0  # seconds on the broker's clock, which only ``advance`` moves
        self.publisher = MemoryPublisher(self)
        self._queues: dict[str, _Queue] = {}
        self._unsettled: dict[int, MemoryMessage] = {}
        self._tags = 0
        self._exchanges = {EVENTS: _Exchange("topic", UNROUTED), DEAD: _Exchange("direct"),
                           ENRICHED: _Exchange("topic", UNCLAIMED)}
        for lot in (UNROUTED, UNCLAIMED):  # each a fanout to its own queue, dead-lettering back
            self._exchanges[lot] = _Exchange("fanout", bindings=[("", lot)])
            self._declare(lot, (lot, ""))
        for binding in bindings:
            self.add(binding, retry_tiers)

    def add(self, binding: Binding, retry_tiers: Sequence[float] = ()) -> None:
        """Declare a handler's work queue, parking lot and delay queues, as ``topology`` does."""
        work, lot = queue_name(binding.handler), dead_queue_name(binding.handler)
        self._declare(work, (DEAD, work))
        self._exchanges[EVENTS].bindings += [(key, work) for key in binding.routing_keys]
        self._declare(lot, (DEAD, lot))
        self._exchanges[DEAD].bindings += [(work, lot), (lot, lot)]
        for seconds in retry_tiers:
            self._declare(delay_queue_name(binding.handler, seconds), ("", work), seconds)

    def bind(self, exchange: str, queue: str, pattern: str = "#") -> None:
        """Bind ``queue`` (declared if new, without dead-lettering) to ``exchange``."""
        self._declare(queue, None)
        self._exchanges[exchange].bindings.append((pattern, queue))

    def messages(self, queue: str) -> list[Queued]:
        """The ready messages of ``queue``, head first (those delivered and unsettled not)."""
        return [queued for _, queued in self._queue(queue).ready]

    @property
    def unsettled(self) -> list[MemoryMessage]:
        """Messages delivered and not yet settled."""
        return list(self._unsettled.values())

    def route(self, exchange: str, key: str, message: Queued) -> int:
        """Queue ``message`` wherever ``exchange`` routes ``key`` (through its alternate exchange
        when nothing matches); return in how many queues. ``KeyError``: no such exchange."""
        names = self._targets(exchange, key)
        for name in names:
            self._enqueue(self._queues[name], replace(
                message, headers=copy.deepcopy(message.headers), exchange=exchange,
                routing_key=key, redelivered=False))
        return len(names)

    def advance(self, seconds: float | None = None) -> int:
        """Move the clock ``seconds`` on (``None``: to the last pending expiry) and dead-letter
        each message whose TTL has run out, earliest first; return how many."""
        if seconds is None:
            pending = [at for q in self._queues.values() for at, _ in q.ready if q.ttl]
            self.now = max([self.now, *pending])
        else:
            self.now += seconds
        expired = 0
        while (queue := self._next_expired()) is not None:
            self._dead_letter(queue, queue.ready.popleft()[1], "expired")
            expired += 1
        return expired

    async def deliver(self, queue: str, consumer: Consumer, *, limit: int = 1000) -> int:
        """Hand each ready message of ``queue`` to ``consumer`` in turn, awaiting it, until the
        queue is empty or after ``limit`` deliveries; return how many. What ``consumer`` leaves
        unsettled stays in ``unsettled``; what it raises propagates."""
        held, delivered = self._queue(queue), 0
        while held.ready and delivered < limit:
            self._tags += 1
            message = MemoryMessage(self, queue, held.ready.popleft()[1], self._tags)
            self._unsettled[self._tags] = message
            delivered += 1
            await consumer(message)
        return delivered

    def settle(self, message: MemoryMessage, *, forget: bool, requeue: bool) -> None:
        """Called by ``message`` once: forget it (acked), put it back at the head of its queue
        (``requeue``), else dead-letter it."""
        del self._unsettled[message.delivery_tag]
        queue, queued = self._queues[message.queue], message.queued
        if forget:
            return
        if not requeue:
            self._dead_letter(queue, queued, "rejected")
            return
        count = queued.headers.get(DELIVERY_COUNT)
        again: Headers = {**queued.headers,
                          DELIVERY_COUNT: count + 1 if isinstance(count, int) else 1}
        queue.ready.appendleft((self._expiry(queue), replace(queued, headers=again,
                                                             redelivered=True)))

    def _dead_letter(self, queue: _Queue, queued: Queued, reason: str) -> None:
        if queue.dead_letter is None:
            return  # dropped, as RabbitMQ drops it
        exchange, key = queue.dead_letter
        recorded = queued.headers.get(DEATHS)
        deaths = [d for d in recorded if isinstance(d, dict)] if isinstance(recorded, list) else []
        same = next((d for d in deaths
                     if d.get("queue") == queue.name and d.get("reason") == reason), None)
        count = same.get("count") if same else 0
        death = {"count": (count if isinstance(count, int) else 0) + 1, "reason": reason,
                 "queue": queue.name, "time": datetime.now(UTC), "exchange": queued.exchange,
                 "routing-keys": [queued.routing_key]}
        entries: list[Any] = [death, *(d for d in deaths if d is not same)]
        headers: Headers = {**queued.headers, DEATHS: entries}
        self.route(exchange, key or queued.routing_key, replace(queued, headers=headers))

    def _targets(self, exchange: str, key: str) -> list[str]:
        if exchange == "":
            return [key] if key in self._queues else []
        names = self._exchanges[exchange].queues(key)
        alternate = self._exchanges[exchange].alternate
        return self._targets(alternate, key) if not names and alternate else names

    def _declare(self, name: str, dead_letter: tuple[str, str] | None,
                 ttl: float | None = None) -> None:
        self._queues.setdefault(name, _Queue(name, dead_letter, ttl))

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise KeyError(f"no queue {name!r} (NOT_FOUND)") from None

    def _enqueue(self, queue: _Queue, message: Queued) -> None:
        queue.ready.append((self._expiry(queue), message))

    def _expiry(self, queue: _Queue) -> float:
        return math.inf if queue.ttl is None else self.now + queue.ttl

    def _next_expired(self) -> _Queue | None:
        due = [q for q in self._queues.values() if q.ready and q.ready[0][0] <= self.now]
        return min(due, key=lambda q: q.ready[0][0], default=None)


def _topic_matches(pattern: list[str], words: list[str]) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` any number of them."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_topic_matches(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _topic_matches(rest, words[1:])

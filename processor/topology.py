"""The RabbitMQ topology, declared idempotently by ``zenoti-events topology`` and at start-up.

::

    zenoti.events   topic, alternate-exchange zenoti.unrouted: routing key = normalised type
      ├─ zenoti.h.<handler>        quorum queue per handler, bound to its event types,
      │                            dead-letter exchange zenoti.dead (key = the queue's name)
      └─ (no binding matches) ──> zenoti.unrouted (fanout) ──> queue zenoti.unrouted
    zenoti.dead     direct: zenoti.h.<handler> ──> queue zenoti.h.<handler>.dead (parking lot)
    zenoti.enriched topic: the handlers' output, for the users' own queues

Only features present in both RabbitMQ 3.10 and 4.x are used (quorum queues with a dead-letter
exchange, alternate exchanges). Bindings that settings no longer name are not removed: AMQP
cannot list them; an operator unbinds them (documented in docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel
from pamqp.common import FieldTable

from schemas.envelope import routing_key

EVENTS = "zenoti.events"
UNROUTED = "zenoti.unrouted"
DEAD = "zenoti.dead"
ENRICHED = "zenoti.enriched"
_QUORUM: FieldTable = {"x-queue-type": "quorum"}


def queue_name(handler: str) -> str:
    """The work queue of a handler."""
    return f"zenoti.h.{handler}"


def dead_queue_name(handler: str) -> str:
    """The parking lot of a handler."""
    return f"{queue_name(handler)}.dead"


@dataclass(frozen=True, slots=True)
class Binding:
    """A handler and the exact event types (as Zenoti spells them) its queue receives."""

    handler: str
    event_types: tuple[str, ...]

    @property
    def routing_keys(self) -> tuple[str, ...]:
        return tuple(sorted({routing_key(t) for t in self.event_types}))


async def declare(channel: AbstractChannel, bindings: Sequence[Binding]) -> None:
    """Declare every exchange, queue and binding; safe to run any number of times."""
    unrouted = await channel.declare_exchange(UNROUTED, ExchangeType.FANOUT, durable=True)
    parked = await channel.declare_queue(UNROUTED, durable=True, arguments=_QUORUM)
    await parked.bind(unrouted)
    events = await channel.declare_exchange(
        EVENTS, ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED}
    )
    dead = await channel.declare_exchange(DEAD, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(ENRICHED, ExchangeType.TOPIC, durable=True)
    for binding in bindings:
        work = await channel.declare_queue(
            queue_name(binding.handler), durable=True, arguments=_work_queue_arguments(binding)
        )
        for key in binding.routing_keys:
            await work.bind(events, routing_key=key)
        lot = await channel.declare_queue(
            dead_queue_name(binding.handler), durable=True, arguments=_QUORUM
        )
        await lot.bind(dead, routing_key=queue_name(binding.handler))


def _work_queue_arguments(binding: Binding) -> FieldTable:
    # Broker-side dead-lettering (RabbitMQ 4's delivery limit, rejections) lands in the same
    # parking lot as the worker's own dead letters, so nothing is ever dropped silently.
    return {
        **_QUORUM,
        "x-dead-letter-exchange": DEAD,
        "x-dead-letter-routing-key": queue_name(binding.handler),
    }


def bindings_for(
    handlers: Mapping[str, Sequence[str]], overrides: Mapping[str, Sequence[str]]
) -> list[Binding]:
    """Bindings of the installed handlers, with ``overrides`` replacing a handler's types."""
    return [
        Binding(name, tuple(overrides.get(name, types)))
        for name, types in sorted(handlers.items())
    ]

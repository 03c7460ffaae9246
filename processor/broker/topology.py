"""The RabbitMQ topology, declared idempotently by ``zenoti-events topology`` and at start-up.

::

    zenoti.ingress  fanout: what the ingress publishes (routing key = normalised type)
      ├─ zenoti.archive            stream: every accepted delivery, kept by age and size
      └─ zenoti.events (exchange-to-exchange binding)
    zenoti.ingress.parked  fanout: what the ingress parks itself (not an envelope, refused)
      ├─ zenoti.archive
      └─ zenoti.unrouted (exchange-to-exchange binding)
    zenoti.events   topic, alternate-exchange zenoti.unrouted: routing key = normalised type
      ├─ zenoti.h.<handler>        quorum queue per handler, bound to its event types,
      │                            delivery limit, dead-letter exchange zenoti.dead
      └─ (no binding matches) ──> zenoti.unrouted (fanout) ──> queue zenoti.unrouted
    zenoti.h.<handler>.retry.<tier>   delay queues (TTL = tier) dead-lettering back to the work
                                      queue through the default exchange (processor.worker.retry)
    zenoti.dead     direct: zenoti.h.<handler> ──> queue zenoti.h.<handler>.dead (parking lot)
    zenoti.enriched topic: the handlers' output, for the users' own queues; output no queue
                    is bound for goes to zenoti.enriched.unclaimed (alternate exchange + queue)

The archive hangs off a fanout in front of ``zenoti.events``, not a ``#`` binding on it, which
would make every type routable and starve ``zenoti.unrouted``: RabbitMQ consults an exchange's
alternate exchange when *that* exchange routes to nothing, whatever routed to it, so the stream
gets each delivery once and unknown types still reach ``zenoti.unrouted``
(tests/integration/test_archive.py). Copies the system makes itself (retries, dead letters,
``dlq replay``) do not pass the fanouts: the archive holds what Zenoti sent.

Every queue but the archive is a durable quorum queue with a dead-letter target and
at-least-once dead-lettering, so no message leaves a queue unless a consumer acked it. Only
features present in both RabbitMQ 3.10 and 4.x are used (quorum queues with dead-lettering, TTL
and delivery limit; alternate exchanges; exchange-to-exchange bindings; streams). Bindings that
settings no longer name are not removed: AMQP cannot list them; an operator unbinds them
(documented in docs/architecture.md).

A queue or exchange that already exists with other arguments (a classic queue, another
dead-letter target) cannot be redeclared: the broker answers ``PRECONDITION_FAILED`` and
``declare`` raises ``TopologyMismatch`` naming the entity and the argument. That is a
configuration error: retrying cannot help, so every process stops on it instead of reconnecting
forever. Two exceptions, both values a policy governs on the existing queue (``processor.ops.
policies``), so a difference must never stop deliveries: the archive's retention (logged as
``archive.retention_differs``) and a work queue's ``x-delivery-limit``. A work queue made with
another delivery limit (an earlier ``DELIVERY_LIMIT``) is used as it is, logged as
``topology.argument_differs`` (an error when the settings ask for more than the queue has,
which cannot take effect; a queue made without a limit is still a mismatch): the broker
applies the lower of its argument and the policy's ``delivery-limit`` (RabbitMQ 3.10 to 4.x),
so a policy lowers it live and the argument is its ceiling (docs/operations.md, "Changing the
delivery limit"). The argument is still declared on a new queue, so that no work queue is ever
without an explicit limit, whatever the policies: RabbitMQ 3.x has none by default, 4.x 20.

Processes that do not declare (``DECLARE_TOPOLOGY=false``, so that their broker users need no
configure permission, nor read on the queues a declaration would touch) call ``check`` instead:
a passive declaration of each exchange and queue they use, which RabbitMQ answers without
checking any permission. What is missing is raised at once, every name in one ``ConfigError``,
since only ``zenoti-events topology``, run as a user allowed to configure, can make it.
``ingress_needs`` and ``worker_needs`` say what each process uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.abc import AbstractChannel as UnderlayChannel
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.common import FieldTable

from processor.broker.stream import ARCHIVE, Retention, declare_stream
from processor.errors import ConfigError, TopologyMismatch
from processor.logs import get_logger
from schemas.envelope import routing_key

INGRESS = "zenoti.ingress"
PARKED = "zenoti.ingress.parked"
EVENTS = "zenoti.events"
UNROUTED = "zenoti.unrouted"
DEAD = "zenoti.dead"
ENRICHED = "zenoti.enriched"
UNCLAIMED = "zenoti.enriched.unclaimed"
_RETENTION = Retention()  # the settings' defaults
# RabbitMQ's reply to a redeclaration with other arguments, e.g. "PRECONDITION_FAILED -
# inequivalent arg 'x-delivery-limit' for queue 'q' in vhost 'v': received '5' but current is '10'"
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']*)' for (?P<kind>\w+) '(?P<name>[^']*)' in vhost "
    r"'(?P<vhost>[^']*)': received (?P<ours>.*) but current is (?P<theirs>.*)$"
)
# Quorum queues; dead-lettering at-least-once (RabbitMQ >= 3.10) needs reject-publish overflow.
_SAFE_DEAD_LETTERING: FieldTable = {
    "x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}
DELIVERY_LIMIT = "x-delivery-limit"
# "received the value '10' of type 'byte'" (3.10), "received '10'", "received none"
_VALUE = re.compile(r"'(?P<value>-?\d+)'")


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


async def declare(
    channel: AbstractChannel, bindings: Sequence[Binding], *,
    retry_tiers: Sequence[float] = (), delivery_limit: int = 10,
    archive: Retention = _RETENTION,
) -> None:
    """Declare every exchange, queue and binding; safe to run any number of times.

    Raises ``TopologyMismatch`` if one exists with other arguments; ``channel`` is then closed
    (the broker closes it). The archive is made with ``archive`` if it does not exist; if it
    does with another retention, that is logged and left (see the module)."""
    try:
        await _declare(channel, bindings, retry_tiers, delivery_limit)
        await _declare_archive(channel, archive)
    except ChannelPreconditionFailed as exc:
        raise mismatch(str(exc.args[0]) if exc.args else "") from exc


@dataclass(frozen=True, slots=True)
class Needs:
    """The exchanges and queues a process uses, which must exist when it does not declare."""

    exchanges: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


def ingress_needs() -> Needs:
    """The ingress publishes to the archive's fanouts and nothing else."""
    return Needs(exchanges=(INGRESS, PARKED))


def worker_needs(bindings: Sequence[Binding], retry_tiers: Sequence[float] = ()) -> Needs:
    """A worker consumes its handlers' queues, publishes retries to their delay queues (through
    the default exchange), dead letters to ``zenoti.dead`` (routed to the parking lots) and
    output to ``zenoti.enriched``."""
    queues: list[str] = []
    for binding in bindings:
        queues += [queue_name(binding.handler), dead_queue_name(binding.handler)]
        queues += [delay_queue_name(binding.handler, seconds) for seconds in retry_tiers]
    return Needs(exchanges=(DEAD, ENRICHED), queues=tuple(queues))


async def check(channel: AbstractChannel, needs: Needs) -> None:
    """Raise ``ConfigError`` naming every exchange and queue of ``needs`` the broker does not
    have. Passive declarations, on channels of their own (a missing entity closes its channel):
    ``channel`` stays open, and no permission is needed."""
    underlay = await channel.get_underlay_channel()
    missing: list[str] = []
    probe: UnderlayChannel | None = None
    wanted = [("exchange", e) for e in needs.exchanges] + [("queue", q) for q in needs.queues]
    try:
        for kind, name in wanted:
            if probe is None or probe.is_closed:
                probe = await underlay.connection.channel(publisher_confirms=False)
            try:
                if kind == "exchange":
                    await probe.exchange_declare(name, passive=True)
                else:
                    await probe.queue_declare(name, passive=True)
            except ChannelNotFoundEntity:
                missing.append(f"{kind} {name}")
    finally:
        if probe is not None and not probe.is_closed:
            await probe.close()
    if missing:
        raise ConfigError(
            f"the broker has no {', '.join(missing)}: this process does not declare the "
            "topology (DECLARE_TOPOLOGY=false): run `zenoti-events topology`, which declares "
            "it, as a user allowed to configure it (in Kubernetes, the zenoti-events-topology "
            "Job), then start this process again")


def mismatch(reply_text: str) -> TopologyMismatch:
    """The ``TopologyMismatch`` that the broker's ``PRECONDITION_FAILED`` reply describes."""
    found = _INEQUIVALENT.search(reply_text)
    if found is None:
        return TopologyMismatch(f"the broker refused the topology: {reply_text}")
    return TopologyMismatch(
        f"{found['kind']} {found['name']!r} in vhost {found['vhost']!r} exists with "
        f"{found['arg']} = {found['theirs']} but this process declares {found['ours']}: delete or "
        f"migrate the {found['kind']}, or change the settings to match"
    )


async def _declare(
    channel: AbstractChannel, bindings: Sequence[Binding], retry_tiers: Sequence[float],
    delivery_limit: int,
) -> None:
    unrouted = await channel.declare_exchange(UNROUTED, ExchangeType.FANOUT, durable=True)
    parked = await channel.declare_queue(UNROUTED, durable=True, arguments=_parking(UNROUTED, ""))
    await parked.bind(unrouted)
    events = await channel.declare_exchange(
        EVENTS, ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED}
    )
    dead = await channel.declare_exchange(DEAD, ExchangeType.DIRECT, durable=True)
    # Output nobody has bound a queue for yet is kept, not refused: a missing consumer must not
    # turn every handled event into a retry.
    unclaimed = await channel.declare_exchange(UNCLAIMED, ExchangeType.FANOUT, durable=True)
    kept = await channel.declare_queue(UNCLAIMED, durable=True, arguments=_parking(UNCLAIMED, ""))
    await kept.bind(unclaimed)
    await channel.declare_exchange(
        ENRICHED, ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNCLAIMED}
    )
    for binding in bindings:
        work = queue_name(binding.handler)
        queue = await _declare_work_queue(channel, work, _work_queue(work, delivery_limit))
        for key in binding.routing_keys:
            await queue.bind(events, routing_key=key)
        lot_name = dead_queue_name(binding.handler)
        lot = await channel.declare_queue(
            lot_name, durable=True, arguments=_parking(DEAD, lot_name)
        )
        await lot.bind(dead, routing_key=work)
        await lot.bind(dead, routing_key=lot_name)
        for seconds in retry_tiers:
            await channel.declare_queue(
                delay_queue_name(binding.handler, seconds), durable=True,
                arguments=_delay_queue(work, seconds),
            )


async def _declare_work_queue(
    channel: AbstractChannel, name: str, arguments: FieldTable
) -> AbstractQueue:
    """The work queue ``name``, made with ``arguments`` if it does not exist. One made with
    another ``x-delivery-limit`` is redeclared with its own and kept, logged as
    ``topology.argument_differs``; any other difference, and a queue made without a limit,
    raise ``ChannelPreconditionFailed``.
    Declared on channels of their own, which a mismatch closes: ``channel`` stays open."""
    underlay = await channel.get_underlay_channel()
    try:
        await _declare_apart(underlay, name, arguments)
    except ChannelPreconditionFailed as exc:
        reply = str(exc.args[0]) if exc.args else ""
        found = _INEQUIVALENT.search(reply)
        if found is None or found["arg"] != DELIVERY_LIMIT or found["name"] != name:
            raise
        theirs, ours = _limit(found["theirs"]), arguments.get(DELIVERY_LIMIT)
        if theirs is None:  # a queue without a limit: nothing would park a poison message
            raise
        # Every other argument must still match: declared again with the queue's own limit.
        await _declare_apart(underlay, name, _with_limit(arguments, theirs))
        _said_limit(name, theirs, ours if isinstance(ours, int) else None)
    return await channel.get_queue(name, ensure=False)


def _said_limit(name: str, theirs: int, ours: int | None) -> None:
    """One line on a work queue kept with its own delivery limit: an error when the settings
    ask for more than it has (the queue's argument is a ceiling no policy lifts), else a
    warning (a policy lowers it live)."""
    log = get_logger(component="topology")
    above = ours is not None and ours > theirs
    (log.error if above else log.warning)(
        "topology.argument_differs", queue=name, argument=DELIVERY_LIMIT,
        queue_has=theirs, settings_say=ours,
        detail=(f"the effective limit is at most {theirs}, not {ours}: the queue's own "
                "argument is a ceiling; raising it means recreating the queue"
                if above else "the queue keeps its own; the lower of it and the policy's "
                "delivery-limit is in effect")
        + " (docs/operations.md, 'Changing the delivery limit')")


async def _declare_apart(underlay: UnderlayChannel, name: str, arguments: FieldTable) -> None:
    probe = await underlay.connection.channel(publisher_confirms=False)
    try:
        await probe.queue_declare(name, durable=True, arguments=arguments)
    finally:
        if not probe.is_closed:
            await probe.close()


def _limit(reply_value: str) -> int | None:
    """The delivery limit a broker's reply names (``'5' of type 'long'``); ``None`` for
    ``none``, a queue declared without one."""
    found = _VALUE.search(reply_value)
    return None if found is None else int(found["value"])


def _with_limit(arguments: FieldTable, limit: int) -> FieldTable:
    """``arguments`` with ``limit`` as their ``x-delivery-limit``."""
    return {**{k: v for k, v in arguments.items() if k != DELIVERY_LIMIT}, DELIVERY_LIMIT: limit}


async def _declare_archive(channel: AbstractChannel, retention: Retention) -> None:
    """The fanouts in front of ``zenoti.events`` and ``zenoti.unrouted``, and the stream
    behind them."""
    events = await channel.get_exchange(EVENTS, ensure=False)
    unrouted = await channel.get_exchange(UNROUTED, ensure=False)
    ingress = await channel.declare_exchange(INGRESS, ExchangeType.FANOUT, durable=True)
    parked = await channel.declare_exchange(PARKED, ExchangeType.FANOUT, durable=True)
    archive = await declare_stream(channel, ARCHIVE, retention)
    for source in (ingress, parked):
        await archive.bind(source)
    await events.bind(ingress)
    await unrouted.bind(parked)


def _work_queue(name: str, delivery_limit: int) -> FieldTable:
    # Broker-side dead-lettering (the delivery limit that bounds a poison message which crashes
    # its worker, rejections) lands in the same parking lot as the worker's own dead letters,
    # at-least-once, so nothing is ever dropped silently.
    return {**_SAFE_DEAD_LETTERING, "x-dead-letter-exchange": DEAD,
            "x-dead-letter-routing-key": name, DELIVERY_LIMIT: delivery_limit}


def _delay_queue(work: str, seconds: float) -> FieldTable:
    # Expired messages go back to the work queue through the default exchange.
    return {**_SAFE_DEAD_LETTERING, "x-message-ttl": int(seconds * 1000),
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work}


def _parking(exchange: str, key: str) -> FieldTable:
    # A parking lot dead-letters into itself: RabbitMQ 4's default delivery limit on quorum
    # queues then sends a message that was delivered too often back to the tail, not away.
    return {**_SAFE_DEAD_LETTERING, "x-dead-letter-exchange": exchange,
            "x-dead-letter-routing-key": key}


def bindings_for(
    handlers: Mapping[str, Sequence[str]], overrides: Mapping[str, Sequence[str]]
) -> list[Binding]:
    """Bindings of the installed handlers, with ``overrides`` replacing a handler's types."""
    return [
        Binding(name, tuple(overrides.get(name, types)))
        for name, types in sorted(handlers.items())
    ]


def tier_label(seconds: float) -> str:
    """``5`` -> ``5s``, ``120`` -> ``2m``, ``3600`` -> ``1h``: the suffix of a delay queue."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def delay_queue_name(handler: str, seconds: float) -> str:
    return f"zenoti.h.{handler}.retry.{tier_label(seconds)}"

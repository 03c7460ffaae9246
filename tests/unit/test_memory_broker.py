"""The in-memory broker keeps the promises dispatch relies on: routing as the topology declares
it, delay queues that give messages back after their TTL, confirms and refusals, and
deliveries that settle exactly once."""

from __future__ import annotations

import pytest
from aio_pika.exceptions import MessageProcessError

from processor.broker.memory import MemoryBroker
from processor.broker.memory_client import MemoryMessage, Queued
from processor.broker.protocols import IncomingMessage
from processor.broker.topology import DEAD, ENRICHED, EVENTS, UNCLAIMED, UNROUTED, Binding
from processor.errors import BrokerUnavailable, PublishRefused

WORK = "zenoti.h.freeze"
LOT = "zenoti.h.freeze.dead"


def broker() -> MemoryBroker:
    return MemoryBroker([Binding("freeze", ("Guest.Membership.Freeze",))],
                        retry_tiers=[5.0, 30.0])


def message(message_id: str = "m1", **headers: object) -> Queued:
    return Queued(b"{}", dict(headers), message_id=message_id, content_type="application/json")


async def delivered(memory: MemoryBroker, queue: str) -> list[MemoryMessage]:
    """Every ready message of ``queue``, delivered and left unsettled."""
    taken: list[MemoryMessage] = []

    async def keep(incoming: IncomingMessage) -> None:
        assert isinstance(incoming, MemoryMessage)
        taken.append(incoming)

    await memory.deliver(queue, keep)
    return taken


async def test_events_go_to_the_work_queue_bound_to_their_key_and_others_to_unrouted() -> None:
    memory = broker()
    assert memory.route(EVENTS, "guest.membership.freeze", message("a")) == 1
    assert memory.route(EVENTS, "appointment.started", message("b")) == 1
    assert [q.message_id for q in memory.messages(WORK)] == ["a"]
    [unrouted] = memory.messages(UNROUTED)
    assert (unrouted.message_id, unrouted.exchange) == ("b", EVENTS)


async def test_output_goes_to_bound_queues_by_topic_pattern_else_to_unclaimed() -> None:
    memory = broker()
    memory.bind(ENRICHED, "mine", "membership.*")
    await memory.publisher.publish(ENRICHED, "membership.frozen", b"1", message_id="o1")
    await memory.publisher.publish(ENRICHED, "package.updated.now", b"2", message_id="o2")
    assert [q.message_id for q in memory.messages("mine")] == ["o1"]
    assert [q.message_id for q in memory.messages(UNCLAIMED)] == ["o2"]
    assert [q.message_id for q in memory.publisher.published] == ["o1", "o2"]


async def test_a_publish_nothing_routes_is_returned_as_broker_unavailable() -> None:
    memory = broker()
    with pytest.raises(BrokerUnavailable, match="returned"):
        await memory.publisher.publish("", "zenoti.h.freeze.retry.7s", b"", message_id="x")
    with pytest.raises(BrokerUnavailable, match="no exchange"):
        await memory.publisher.publish("nowhere", "k", b"", message_id="x")
    assert memory.publisher.published == []


async def test_a_delay_queue_gives_each_message_back_to_the_work_queue_after_its_ttl() -> None:
    memory = broker()
    await memory.publisher.publish("", "zenoti.h.freeze.retry.30s", b"", message_id="late")
    await memory.publisher.publish("", "zenoti.h.freeze.retry.5s", b"", message_id="soon")
    assert memory.advance(4.9) == 0 and memory.messages(WORK) == []
    assert memory.advance(0.1) == 1
    assert memory.advance() == 1 and memory.now == 30.0
    soon, late = memory.messages(WORK)
    assert (soon.message_id, late.message_id) == ("soon", "late")
    death = soon.headers["x-death"][0]
    assert (death["queue"], death["reason"], death["count"]) == (
        "zenoti.h.freeze.retry.5s", "expired", 1)
    assert (soon.exchange, soon.routing_key) == ("", WORK)


async def test_a_message_settles_once_and_a_second_settlement_raises() -> None:
    memory = broker()
    memory.route(EVENTS, "guest.membership.freeze", message())
    [taken] = await delivered(memory, WORK)
    assert memory.unsettled == [taken]
    await taken.ack()
    assert taken.settled == "ack" and memory.unsettled == []
    for settle in (taken.ack(), taken.nack(), taken.reject()):
        with pytest.raises(MessageProcessError):
            await settle
    assert memory.messages(WORK) == [] and memory.messages(LOT) == []


async def test_a_requeued_message_comes_back_first_redelivered_and_counted() -> None:
    memory = broker()
    memory.route(EVENTS, "guest.membership.freeze", message("a"))
    memory.route(EVENTS, "guest.membership.freeze", message("b"))
    first, second = await delivered(memory, WORK)
    await second.nack()
    await first.reject(requeue=True)
    again = await delivered(memory, WORK)
    assert [(m.message_id, m.redelivered) for m in again] == [("a", True), ("b", True)]
    assert [m.headers["x-delivery-count"] for m in again] == [1, 1]


async def test_a_rejected_message_is_dead_lettered_into_its_parking_lot() -> None:
    memory = broker()
    memory.route(EVENTS, "guest.membership.freeze", message("p", tenant="default"))
    [taken] = await delivered(memory, WORK)
    taken.headers["tenant"] = "changed by the consumer"  # its own copy: the lot keeps the sent
    await taken.nack(requeue=False)
    [parked] = memory.messages(LOT)
    assert parked.headers["tenant"] == "default"
    assert [(d["queue"], d["reason"]) for d in parked.headers["x-death"]] == [(WORK, "rejected")]
    assert (parked.exchange, parked.routing_key) == (DEAD, WORK)
    [again] = await delivered(memory, LOT)  # a lot dead-letters into itself
    await again.reject()
    [back] = memory.messages(LOT)
    assert [(d["queue"], d["count"]) for d in back.headers["x-death"]] == [(LOT, 1), (WORK, 1)]


async def test_the_publisher_fails_as_told_for_as_many_publishes_as_told() -> None:
    memory = broker()
    memory.publisher.fail(PublishRefused("too big"), exchange=DEAD, times=2)
    memory.publisher.fail(BrokerUnavailable("away"))
    with pytest.raises(BrokerUnavailable):
        await memory.publisher.publish(ENRICHED, "k", b"", message_id="1")
    for _ in range(2):
        with pytest.raises(PublishRefused):
            await memory.publisher.publish(DEAD, WORK, b"", message_id="2")
    await memory.publisher.publish(DEAD, WORK, b"", message_id="3")
    assert [q.message_id for q in memory.messages(LOT)] == ["3"]
    assert memory.messages(UNCLAIMED) == []


async def test_delivery_stops_at_its_limit_when_a_message_is_requeued_forever() -> None:
    memory = broker()
    memory.route(EVENTS, "guest.membership.freeze", message())

    async def refuse(incoming: IncomingMessage) -> None:
        await incoming.nack(requeue=True)

    assert await memory.deliver(WORK, refuse, limit=5) == 5
    [left] = memory.messages(WORK)
    assert left.headers["x-delivery-count"] == 5

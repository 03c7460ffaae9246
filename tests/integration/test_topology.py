"""The topology on the real broker: idempotent, unknown types parked, dead letters routed."""

from __future__ import annotations

import aio_pika
import pytest

from processor.broker import topology
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, depth, drain, reset

pytestmark = pytest.mark.integration


@pytest.fixture
async def url(broker: Broker) -> str:
    await reset(broker.url, TEST_BINDINGS)
    return broker.url


async def publish(url: str, exchange: str, key: str, body: bytes = b"{}") -> None:
    async with channel(url) as ch:
        ex = await ch.get_exchange(exchange) if exchange else ch.default_exchange
        await ex.publish(aio_pika.Message(body), routing_key=key, mandatory=True)


async def test_declaring_twice_is_harmless(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        await topology.declare(ch, TEST_BINDINGS)
    assert await depth(url, "zenoti.h.membership-freeze") == 0


async def test_queues_are_durable_quorum_queues(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        # Redeclaring as classic would fail if they were not quorum queues.
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await ch.declare_queue("zenoti.h.package-status", durable=True)


async def test_an_event_type_is_routed_to_its_handler_queue(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    await publish(url, topology.EVENTS, "guestpass.redeemed")
    assert len(await drain(url, "zenoti.h.guestpass-redeemed", 1)) == 1


async def test_an_event_type_nobody_handles_is_parked_in_unrouted(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    await publish(url, topology.EVENTS, "appointment.started", b'{"x": 1}')
    [parked] = await drain(url, topology.UNROUTED, 1)
    assert parked.body == b'{"x": 1}'
    assert parked.routing_key == "appointment.started"


async def test_a_broker_side_rejection_lands_in_the_handlers_parking_lot(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    await publish(url, topology.EVENTS, "guest.package.statusupdate", b"poison")
    async with channel(url) as ch:
        q = await ch.get_queue("zenoti.h.package-status")
        message = await q.get(timeout=5)
        await message.reject(requeue=False)
    [dead] = await drain(url, "zenoti.h.package-status.dead", 1)
    assert dead.body == b"poison"


async def test_output_no_queue_is_bound_for_is_kept_in_unclaimed(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    await publish(url, topology.ENRICHED, "guest.membership.frozen", b'{"out": 1}')
    [kept] = await drain(url, topology.UNCLAIMED, 1)
    assert kept.body == b'{"out": 1}'
    assert kept.routing_key == "guest.membership.frozen"

"""The archive stream on the real broker: every accepted delivery once, unknown types still
parked in unrouted, handler queues as before, retention from the settings."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from processor import wiring
from processor.broker import stream, topology
from processor.broker.stream import ARCHIVE, Retention
from processor.ingress.signature import sign
from processor.logs import get_logger
from processor.settings import Settings
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, depth, drain, reset

pytestmark = pytest.mark.integration

SECRET = "archive-test-secret"
Client = TestClient[web.Request, web.Application]


def settings_for(url: str, **extra: Any) -> Settings:
    return Settings(amqp_url=SecretStr(url), webhook_secrets=[SecretStr(SECRET)],
                    redis_url=None, confirm_timeout=2.0, reconnect_max_delay=0.5, **extra)


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[Client]:
    await reset(broker.url, TEST_BINDINGS)
    built = wiring.build_ingress(settings_for(broker.url), bindings=TEST_BINDINGS,
                                 log=get_logger(test="archive"))
    await built.publisher.start(wait=5)
    client = TestClient(TestServer(built.ingress.app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await built.aclose()


async def post(client: Client, body: bytes) -> int:
    headers = {"zenoti-webhook-signature": sign(SECRET, body)}
    response = await client.post("/webhooks/zenoti", data=body, headers=headers)
    return response.status


def envelope(event_id: str, event_type: str) -> bytes:
    return json.dumps({"id": f"d-{event_id}", "event_id": event_id, "event_type": event_type,
                       "data": {"user_membership_id": "u1"}}).encode()


async def archived(url: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything in the archive, oldest first."""
    async with channel(url) as ch:
        return [m async for m in stream.read(ch, ARCHIVE, "first", idle=1.0)]


async def test_every_accepted_delivery_is_archived_once_and_unknown_types_still_park(
    client: Client, broker: Broker,
) -> None:
    bodies = [envelope("f1", "Guest.Membership.Freeze"), envelope("g1", "Guestpass.redeemed"),
              envelope("p1", "Guest.Package.StatusUpdate"), envelope("a1", "Appointment.Started"),
              envelope("a2", "Appointment.Started"), b"not json at all"]
    assert [await post(client, body) for body in bodies] == [202] * 6
    assert await post(client, bodies[0]) == 200  # Zenoti's resend: a duplicate, not archived
    kept = await archived(broker.url)
    assert Counter(m.message_id for m in kept) == Counter(
        ["default:f1", "default:g1", "default:p1", "default:a1", "default:a2",
         kept[-1].message_id])  # the body that is not an envelope, under its hash
    assert [m.body for m in kept] == bodies
    assert [stream.offset_of(m) for m in kept] == list(range(6))
    # Unknown types and the invalid body are parked as before, and nothing else is.
    parked = await drain(broker.url, topology.UNROUTED, 4, timeout=3)
    assert sorted(m.message_id or "" for m in parked) == sorted(
        ["default:a1", "default:a2", kept[-1].message_id or ""])
    assert parked[-1].headers["x-zenoti-reason"] == "invalid_envelope"
    for queue in ("zenoti.h.membership-freeze", "zenoti.h.guestpass-redeemed",
                  "zenoti.h.package-status"):
        assert await depth(broker.url, queue) == 1


async def test_copies_the_system_makes_itself_are_not_archived(broker: Broker) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        events = await ch.get_exchange(topology.EVENTS)  # as `dlq replay unrouted` sends
        await events.publish(aio_pika.Message(b"{}"), "guestpass.redeemed")
        await ch.default_exchange.publish(aio_pika.Message(b"{}"), "zenoti.h.package-status")
    assert await depth(broker.url, "zenoti.h.guestpass-redeemed") == 1
    assert await archived(broker.url) == []


async def test_the_retention_settings_are_the_streams_arguments(broker: Broker) -> None:
    if not broker.vhost:
        pytest.skip("needs rabbitmqctl on the tests' broker")
    await reset(broker.url, TEST_BINDINGS)
    settings = settings_for(broker.url, archive_max_age="36h", archive_max_bytes=5_000_000,
                            archive_segment_bytes=500_000)
    async with channel(broker.url) as ch:
        await wiring.declare(ch, settings, TEST_BINDINGS)
    listed = broker.ctl("list_queues", "-p", broker.vhost, "--no-table-headers", "name", "type",
                        "arguments")
    [line] = [row for row in listed.splitlines() if row.startswith(f"{ARCHIVE}\t")]
    assert line.split("\t")[1] == "stream"
    for argument in ('{"x-max-age","36h"}', '{"x-max-length-bytes",5000000}',
                     '{"x-stream-max-segment-size-bytes",500000}'):
        assert argument in line


async def test_the_oldest_segments_go_once_the_archive_is_past_its_size(broker: Broker) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS, archive=Retention("7D", 40_000, 8_000))
        ingress = await ch.get_exchange(topology.INGRESS)
        for n in range(200):  # 200 KB through segments of 8 KB, of which 40 KB are kept
            await ingress.publish(aio_pika.Message(b"x" * 1000, message_id=str(n)), "a.b")
    kept = await archived(broker.url)
    assert kept[-1].message_id == "199"
    assert 0 < len(kept) < 100 and stream.offset_of(kept[0]) > 100


async def test_a_reading_waits_longer_for_its_first_delivery_than_between_deliveries(
    broker: Broker,
) -> None:
    """A reader's first delivery can take seconds (the broker opens the stream's reader):
    ``first`` bounds that wait, ``idle`` only the waits after it."""
    await reset(broker.url, TEST_BINDINGS)  # a new archive: offsets from 0
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        ingress = await ch.get_exchange(topology.INGRESS)

        async def late(message_id: str) -> None:
            await asyncio.sleep(3.0)
            await ingress.publish(aio_pika.Message(b"{}", message_id=message_id), "a.b")

        async def read(offset: int, first: float) -> list[str]:
            async with channel(broker.url) as reading:
                return [str(message.message_id) async for message in stream.read(
                    reading, ARCHIVE, offset, idle=0.3, first=first)]

        published = asyncio.create_task(late("offset-0"))
        assert await read(0, first=0.3) == []  # ended before it came
        await published
        published = asyncio.create_task(late("offset-1"))
        assert await read(1, first=30.0) == ["offset-1"]
        await published


async def test_an_archive_with_another_retention_is_kept_and_said_and_nothing_stops(
    broker: Broker,
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS, archive=Retention("7D"))
    async with channel(broker.url) as ch:
        with capture_logs() as logged:
            await topology.declare(ch, TEST_BINDINGS, archive=Retention("1D"))
            await topology.declare(ch, TEST_BINDINGS, archive=Retention("1D"))  # again
        ingress = await ch.get_exchange(topology.INGRESS)  # the caller's channel still works
        await ingress.publish(aio_pika.Message(b"{}", message_id="m"), "guestpass.redeemed")
    said = [e for e in logged if e["event"] == "archive.retention_differs"]
    assert len(said) == 2 and "x-max-age" in said[0]["reply"]
    assert [m.message_id for m in await archived(broker.url)] == ["m"]


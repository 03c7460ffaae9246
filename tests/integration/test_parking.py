"""Parking lots on the real broker: browsing harms nothing, replay and purge take only what
matches, and ``zenoti-events dlq`` drives them with the right exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from processor.broker import topology
from processor.broker.protocols import Headers
from processor.broker.topology import Binding
from processor.cli import main
from processor.errors import BrokerUnavailable
from processor.ops.parking import Filter, ParkingLot
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, depth, drain, reset, until_depth

pytestmark = pytest.mark.integration

HANDLER = "membership-freeze"
LOT = "zenoti.h.membership-freeze.dead"
WORK = "zenoti.h.membership-freeze"
APPOINTMENTS = Binding("appointments", ("Appointment.Started",))
NOW = datetime.now(UTC)


async def prepare(url: str) -> str:
    await reset(url, [*TEST_BINDINGS, APPOINTMENTS])
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    return url


@pytest.fixture
async def url(broker: Broker) -> str:
    return await prepare(broker.url)


async def park(url: str, message_id: str, *, reason: str = "invalid_payload",
               event_type: str = "Guest.Membership.Freeze", dead_ago: float = 60,
               extra: Headers | None = None) -> None:
    """Park a dead letter the way the worker writes one."""
    headers: Headers = {
        "tenant": "default", "event_type": event_type, "received_at": NOW.isoformat(),
        "delivery_id": f"d-{message_id}", "x-zenoti-reason": reason,
        "x-zenoti-error": f"{reason} for {message_id}", "x-zenoti-handler": HANDLER,
        "x-zenoti-dead-at": (NOW - timedelta(seconds=dead_ago)).isoformat(),
        "x-zenoti-attempt": 3, **(extra or {}),
    }
    body = json.dumps({"id": message_id, "event_type": event_type, "data": {}}).encode()
    async with channel(url) as ch:
        exchange = await ch.get_exchange(topology.DEAD)
        await exchange.publish(aio_pika.Message(
            body, message_id=message_id, headers=headers, content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=WORK)


async def receive(url: str, key: str, message_id: str) -> None:
    """An event of a type no handler takes, as the ingress publishes it."""
    body = json.dumps({"id": message_id, "event_type": "Appointment.Started", "data": {}})
    async with channel(url) as ch:
        exchange = await ch.get_exchange(topology.EVENTS)
        await exchange.publish(aio_pika.Message(
            body.encode(), message_id=message_id,
            headers={"event_type": "Appointment.Started", "received_at": NOW.isoformat()},
        ), routing_key=key)


@contextlib.asynccontextmanager
async def parking_lot(url: str, handler: str | None) -> AsyncIterator[ParkingLot]:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        confirmed = await connection.channel(publisher_confirms=True, on_return_raises=True)
        yield ParkingLot(confirmed, handler)


async def parked_ids(url: str, handler: str | None) -> list[str]:
    async with parking_lot(url, handler) as lot:
        return [m.message_id for m in await lot.browse()]


async def test_browsing_returns_every_message_and_leaves_the_queue_as_it_was(url: str) -> None:
    for n, reason in enumerate(["invalid_payload", "resource_not_found", "permanent"]):
        await park(url, f"e{n}", reason=reason)
    async with parking_lot(url, HANDLER) as lot:
        first = await lot.browse()
        second = await lot.browse()
    assert [(m.message_id, m.reason, m.attempts, m.event_type) for m in first] == [
        ("e0", "invalid_payload", 3, "Guest.Membership.Freeze"),
        ("e1", "resource_not_found", 3, "Guest.Membership.Freeze"),
        ("e2", "permanent", 3, "Guest.Membership.Freeze"),
    ]
    assert first[0].error == "invalid_payload for e0"
    assert first[0].age is not None and first[0].age >= timedelta(seconds=60)
    assert [m.message_id for m in second] == ["e0", "e1", "e2"]
    assert await depth(url, LOT) == 3
    left = await drain(url, LOT, 3)
    assert [m.message_id for m in left] == ["e0", "e1", "e2"]
    assert all(m.headers.get("x-delivery-count", 0) == 0 for m in left)
    assert all(m.content_type == "application/json" and m.delivery_mode == 2 for m in left)
    assert all(m.body == json.dumps({"id": m.message_id, "event_type":
                                     "Guest.Membership.Freeze", "data": {}}).encode()
               for m in left)


async def test_filters_select_by_event_type_reason_tenant_and_time(url: str) -> None:
    await park(url, "old", dead_ago=3600)
    await park(url, "new", reason="permanent", dead_ago=10)
    await park(url, "other", event_type="Guestpass.redeemed", dead_ago=10,
               extra={"tenant": "spa-east"})
    async with parking_lot(url, HANDLER) as lot:
        by_tenant = await lot.browse(Filter(tenant="spa-east"))
        purged = await lot.purge(Filter(tenant="nobody"))
        by_type = await lot.browse(Filter(event_type="guest.membership.FREEZE"))
        by_reason = await lot.browse(Filter(reason="permanent"))
        recent = await lot.browse(Filter(since=NOW - timedelta(minutes=5)))
        older = await lot.browse(Filter(until=NOW - timedelta(minutes=5)))
    assert [m.message_id for m in by_type] == ["old", "new"]
    assert [m.message_id for m in by_reason] == ["new"]
    assert [m.message_id for m in recent] == ["new", "other"]
    assert [m.message_id for m in older] == ["old"]
    assert [m.message_id for m in by_tenant] == ["other"] and purged == 0


async def test_replay_moves_only_matching_messages_with_provenance(url: str) -> None:
    await park(url, "a", extra={"x-zenoti-history": [{"attempt": 1, "reason": "timeout"}],
                                "x-zenoti-first-failure-at": NOW.isoformat()})
    await park(url, "b", reason="permanent")
    await park(url, "c")
    async with parking_lot(url, HANDLER) as lot:
        assert await lot.replay(Filter(reason="invalid_payload"), rate=1000) == 2
    assert await depth(url, LOT) == 1
    replayed = await drain(url, WORK, 2)
    assert [m.message_id for m in replayed] == ["a", "c"]
    headers = replayed[0].headers
    assert headers["x-zenoti-replay-count"] == 1 and headers["x-zenoti-attempt"] == 1
    assert datetime.fromisoformat(str(headers["x-zenoti-replayed-at"])) >= NOW
    assert headers["x-zenoti-history"] == [{"attempt": 1, "reason": "timeout"}]
    for gone in ("x-zenoti-reason", "x-zenoti-error", "x-zenoti-dead-at", "x-death",
                 "x-zenoti-first-failure-at"):
        assert gone not in headers
    assert headers["tenant"] == "default" and headers["delivery_id"] == "d-a"


async def test_a_second_replay_counts_two(url: str) -> None:
    await park(url, "a", extra={"x-zenoti-replay-count": 1})
    async with parking_lot(url, HANDLER) as lot:
        assert await lot.replay(Filter(), rate=1000) == 1
    [again] = await drain(url, WORK, 1)
    assert again.headers["x-zenoti-replay-count"] == 2


async def test_a_dry_run_or_a_limit_moves_nothing_more(url: str) -> None:
    for n in range(3):
        await park(url, f"e{n}")
    async with parking_lot(url, HANDLER) as lot:
        assert await lot.replay(Filter(), rate=1000, dry_run=True) == 3
        assert await depth(url, WORK) == 0 and await depth(url, LOT) == 3
        assert await lot.replay(Filter(), rate=1000, limit=1) == 1
    assert [m.message_id for m in await drain(url, WORK, 1)] == ["e0"]
    assert await parked_ids(url, HANDLER) == ["e1", "e2"]


async def test_replay_keeps_to_its_rate(url: str) -> None:
    for n in range(3):
        await park(url, f"e{n}")
    async with parking_lot(url, HANDLER) as lot:
        started = asyncio.get_running_loop().time()
        await lot.replay(Filter(), rate=10)
        assert asyncio.get_running_loop().time() - started >= 0.2


async def test_unrouted_replay_reaches_a_handler_once_its_binding_exists(url: str) -> None:
    await receive(url, "appointment.started", "u1")
    assert await parked_ids(url, None) == ["u1"]  # a rotation must not lose the routing key
    async with parking_lot(url, None) as lot:
        [parked] = await lot.browse()
        assert (parked.reason, parked.routing_key) == ("unrouted", "appointment.started")
        assert await lot.replay(Filter(), rate=1000) == 1
        assert await depth(url, topology.UNROUTED) == 1  # nobody takes it yet: back here
        async with channel(url) as ch:
            await topology.declare(ch, [*TEST_BINDINGS, APPOINTMENTS])
        assert await lot.replay(Filter(event_type="appointment.started"), rate=1000) == 1
    [routed] = await drain(url, "zenoti.h.appointments", 1)
    assert routed.message_id == "u1" and routed.routing_key == "appointment.started"
    assert routed.headers["x-zenoti-replay-count"] == 2
    assert await depth(url, topology.UNROUTED) == 0


async def test_purge_removes_only_matching_messages(url: str) -> None:
    await park(url, "keep", reason="permanent")
    await park(url, "drop")
    async with parking_lot(url, HANDLER) as lot:
        assert await lot.purge(Filter(reason="invalid_payload")) == 1
    assert await parked_ids(url, HANDLER) == ["keep"]


async def test_a_message_the_broker_dead_lettered_shows_its_reason(url: str) -> None:
    async with channel(url) as ch:
        exchange = await ch.get_exchange(topology.EVENTS)
        await exchange.publish(aio_pika.Message(b"poison", message_id="p1"),
                               routing_key="guest.membership.freeze")
        message = await (await ch.get_queue(WORK)).get(timeout=5)
        await message.reject(requeue=False)
    await until_depth(url, LOT, 1)
    async with parking_lot(url, HANDLER) as lot:
        [dead] = await lot.browse()
    assert (dead.message_id, dead.reason, dead.event_type) == ("p1", "rejected", "")
    assert dead.dead_at is not None and dead.error == f"rejected by the broker in {WORK}"


async def test_a_lot_dead_lettering_into_itself_keeps_the_first_reason(url: str) -> None:
    async with channel(url) as ch:
        exchange = await ch.get_exchange(topology.EVENTS)
        await exchange.publish(aio_pika.Message(b"poison", message_id="p1"),
                               routing_key="guest.membership.freeze")
        await (await (await ch.get_queue(WORK)).get(timeout=5)).reject(requeue=False)
        await until_depth(url, LOT, 1)
        await (await (await ch.get_queue(LOT)).get(timeout=5)).reject(requeue=False)
    await until_depth(url, LOT, 1)  # back in the lot, dead-lettered into itself
    async with parking_lot(url, HANDLER) as lot:
        [dead] = await lot.browse()
    assert dead.reason == "rejected" and dead.error == f"rejected by the broker in {WORK}"
    assert [d["queue"] for d in dead.headers["x-death"]] == [LOT, WORK]


async def test_a_copy_that_cannot_be_delivered_stops_the_pass_and_loses_nothing(
    url: str,
) -> None:
    await park(url, "e0")
    async with channel(url) as ch:
        await ch.queue_delete(WORK)  # replay has nowhere to go: the publish is returned
    async with parking_lot(url, HANDLER) as lot:
        with pytest.raises(BrokerUnavailable):
            await lot.replay(Filter(), rate=1000)
    assert await depth(url, LOT) == 1


@pytest.mark.usefixtures("logging_restored")
def test_the_dlq_command_lists_shows_replays_and_purges(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(prepare(broker.url))
    asyncio.run(park(broker.url, "e0"))
    asyncio.run(park(broker.url, "e1", reason="permanent"))
    asyncio.run(receive(broker.url, "appointment.started", "u1"))
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", broker.url)
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")

    assert main(["dlq", "list", HANDLER]) == 0
    out = capsys.readouterr().out
    assert "e0" in out and "permanent" in out and "2 message(s)" in out
    assert main(["dlq", "list", HANDLER, "--reason", "permanent", "--json"]) == 0
    assert [m["message_id"] for m in json.loads(capsys.readouterr().out)] == ["e1"]
    assert main(["dlq", "list", "unrouted"]) == 0
    assert "Appointment.Started  1" in capsys.readouterr().out

    assert main(["dlq", "show", HANDLER, "e1"]) == 0
    out = capsys.readouterr().out
    assert "x-zenoti-reason: permanent" in out and '"id": "e1"' in out
    assert main(["dlq", "show", HANDLER, "nope"]) == 1
    assert main(["dlq", "list", "no-such-handler"]) == 1
    assert "no parking lot" in capsys.readouterr().err

    assert main(["dlq", "purge", HANDLER, "--reason", "permanent"]) == 2
    assert "would delete 1 message(s)" in capsys.readouterr().err
    assert main(["dlq", "replay", HANDLER, "--reason", "invalid_payload", "--rate", "1000"]) == 0
    captured = capsys.readouterr()
    assert "replayed 1 message(s)" in captured.out and "[##########] 2/2" in captured.err
    assert main(["dlq", "purge", HANDLER, "--yes"]) == 0
    assert "purged 1 message(s)" in capsys.readouterr().out
    assert asyncio.run(depth(broker.url, LOT)) == 0
    assert asyncio.run(depth(broker.url, WORK)) == 1

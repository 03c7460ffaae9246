"""The ``archive stats`` and ``replay`` commands on the real broker, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest

from processor.broker import topology
from processor.cli import main
from processor.ops import archive, replay
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, depth, reset

pytestmark = pytest.mark.integration


def envelope(event_id: str, event_type: str) -> bytes:
    return json.dumps({"event_id": event_id, "event_type": event_type, "data": {}}).encode()


async def accept(url: str, deliveries: list[tuple[str, str]], received: datetime) -> None:
    """Publish as the ingress does: ``(key, event type)`` each, received at ``received``."""
    async with channel(url) as ch:
        ingress = await ch.get_exchange(topology.INGRESS)
        for key, event_type in deliveries:
            await ingress.publish(aio_pika.Message(
                envelope(key, event_type), message_id=f"default:{key}",
                headers={"tenant": "default", "event_type": event_type,
                         "received_at": received.isoformat()}), event_type.lower())


async def command(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", url)
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_LEVEL", "warning")
    return await asyncio.to_thread(main, list(argv))


async def test_archive_stats_counts_by_type_between_the_first_and_the_last(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    assert await command(monkeypatch, broker.url, "archive", "stats") == 1
    assert "no stream zenoti.archive (is the topology declared?" in capsys.readouterr().err
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    assert await command(monkeypatch, broker.url, "archive", "stats", "--idle", "0.3",
                         "--json") == 0
    assert json.loads(capsys.readouterr().out)["messages"] == 0  # empty, said as such
    received = datetime.now(UTC) - timedelta(hours=1)
    await accept(broker.url, [("f1", "Guest.Membership.Freeze"), ("f2", "Guest.Membership.Freeze"),
                              ("g1", "Guestpass.redeemed"), ("x1", "Appointment\x1b[2J")],
                 received)
    assert await command(monkeypatch, broker.url, "archive", "stats", "--idle", "0.3",
                         "--json") == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["messages"], found["first"]["offset"], found["last"]["offset"]) == (4, 0, 3)
    assert found["first"]["received_at"] == received.isoformat()
    assert found["by_type"] == {"Guest.Membership.Freeze": 2, "Guestpass.redeemed": 1,
                                "Appointment\x1b[2J": 1}
    assert found["counted_bytes"] == found["estimated_bytes"] > 0 and not found["cut"]
    assert await command(monkeypatch, broker.url, "archive", "stats", "--idle", "0.3",
                         "--limit", "2") == 0
    shown = capsys.readouterr().out
    assert "4 deliveries" in shown and "cut at --limit" in shown
    assert "\x1b" not in shown and "Appointment\\x1b[2J" not in shown  # counted past the cut


async def test_the_replay_command_sends_through_the_handler_named_and_says_what_it_did(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    received = datetime.now(UTC) - timedelta(hours=1)
    await accept(broker.url, [("f1", "Guest.Membership.Freeze"), ("g1", "Guestpass.redeemed"),
                              ("x1", "Appointment.Started")], received)
    since = (received - timedelta(minutes=1)).isoformat()
    assert await command(monkeypatch, broker.url, "replay", "--since", since, "--handler",
                         "guestpass-redeemed", "--idle", "0.3", "--by", "tester") == 0
    said = capsys.readouterr()
    assert "read 3 deliveries (offsets 0..2), selected 3" in said.out
    assert "sent 1 to guestpass-redeemed" in said.out
    assert "skipped 2: no handler takes its type" in said.out
    assert "\rread 3  selected 3  sent 1  skipped 2" in said.err  # the progress line
    assert await depth(broker.url, "zenoti.h.guestpass-redeemed") == 2  # original and copy
    assert await depth(broker.url, "zenoti.h.membership-freeze") == 1  # the original alone
    assert await command(monkeypatch, broker.url, "replay", "--since", since, "--handler",
                         "nope") == 2
    assert "no installed handler named nope" in capsys.readouterr().err


async def test_stats_and_replay_end_while_deliveries_keep_coming(broker: Broker) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
    await accept(broker.url, [(f"o{n}", "Guestpass.redeemed") for n in range(5)],
                 datetime.now(UTC) - timedelta(minutes=10))

    async def live() -> None:  # one delivery every 50 ms: the archive never falls idle
        for n in range(10_000):
            await accept(broker.url, [(f"l{n}", "Guestpass.redeemed")], datetime.now(UTC))
            await asyncio.sleep(0.05)

    feeding = asyncio.create_task(live())
    try:
        connection = await aio_pika.connect(broker.url)
        async with connection, asyncio.timeout(20):
            found = await archive.stats(connection, idle=1.0)
            window = replay.Window(datetime.now(UTC) - timedelta(hours=1),
                                   datetime.now(UTC) + timedelta(hours=1))
            plan = replay.Plan(window, TEST_BINDINGS, dry_run=True, idle=1.0)
            async with channel(broker.url) as reading:
                summary = await replay.replay(reading, reading, plan, replay.Summary())
    finally:
        feeding.cancel()
    assert found.messages >= 5 and found.counted == found.messages
    assert summary.selected >= 5 and summary.published["guestpass-redeemed"] >= 5

"""Replaying the archive on the real broker, through a worker in this event loop: exactly the
window is re-run, a fixed handler's output replaces the wrong one, a dry run sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aio_pika
import pytest
from pydantic import BaseModel

from processor import Context, Event
from processor import message as m
from processor.broker import topology
from processor.broker.topology import Binding
from processor.ops import replay
from tests.conftest import Broker
from tests.integration.amqp import channel, collect, depth, listener, reset
from tests.integration.inprocess import settings_for, worker

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
BINDINGS = [Binding("pricing", ("Test.Priced",)), Binding("audit", ("Test.Priced",
                                                                    "Test.Audited"))]


class Amount(BaseModel):
    cents: int


class Priced(BaseModel):
    key: str
    dollars: float


class Pricing:
    """Publishes the amount in dollars; ``fixed`` is False for the release with the bug
    (cents published as dollars)."""

    name: ClassVar[str] = "pricing"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Priced",)
    schema: ClassVar[type[BaseModel]] = Amount
    fixed: ClassVar[bool] = False

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        cents = event.data.cents
        await ctx.publish("test.priced", Priced(key=event.key,
                                                dollars=cents / 100 if Pricing.fixed else cents))


@pytest.fixture
async def url(broker: Broker) -> AsyncIterator[str]:
    await reset(broker.url, BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, BINDINGS)
    Pricing.fixed = False
    yield broker.url


async def accept(url: str, deliveries: list[tuple[str, str, datetime]],
                 tenant: str = "default") -> None:
    """Publish as the ingress does: ``(key, event type, received at)`` each."""
    async with channel(url) as ch:
        ingress = await ch.get_exchange(topology.INGRESS)
        for key, event_type, received in deliveries:
            body = json.dumps({"event_id": key, "event_type": event_type,
                               "data": {"cents": 1250}}).encode()
            await ingress.publish(aio_pika.Message(
                body, message_id=f"{tenant}:{key}", content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={m.TENANT: tenant, m.EVENT_TYPE: event_type, m.EVENT_ID: key,
                         m.RECEIVED_AT: received.isoformat()}), event_type.lower())


async def run(url: str, plan: replay.Plan) -> replay.Summary:
    async with channel(url) as reading, channel(url) as publishing:
        return await replay.replay(reading, publishing, plan, replay.Summary())


def plan(since: datetime, until: datetime, **options: Any) -> replay.Plan:
    return replay.Plan(replay.Window(since, until), BINDINGS, **{
        "by": "test", "rate": 1000.0, "idle": 2.0, **options})  # a slow first read is no end


def hours(n: float) -> datetime:
    return NOW + timedelta(hours=n)


async def test_a_replay_reruns_exactly_the_window_and_the_fixed_handler_corrects_it(
    url: str,
) -> None:
    before = [(f"b{n}", "Test.Priced", hours(-3)) for n in range(3)]
    inside = [(f"i{n}", "Test.Priced", hours(-2) + timedelta(minutes=n)) for n in range(4)]
    after = [(f"a{n}", "Test.Priced", hours(-1)) for n in range(3)]
    async with listener(url, topology.ENRICHED, "test.priced") as outputs, worker(
            settings_for(url), [Pricing()]):
        await accept(url, before + inside + after)
        wrong = await collect(outputs, 10)
        assert {json.loads(o.body)["dollars"] for o in wrong} == {1250}  # the bug
        Pricing.fixed = True  # the fixed release; the same worker remembers what it handled
        summary = await run(url, plan(hours(-2.5), hours(-1.5)))
        fixed = await collect(outputs, 4)
        assert await collect(outputs, 1, timeout=1.0) == []  # nothing else re-ran
    assert (summary.selected, dict(summary.published)) == (4, {"pricing": 4, "audit": 4})
    assert summary.read == 7  # stopped at the first delivery received after the window
    by_key = {json.loads(o.body)["key"]: o for o in fixed}
    assert sorted(by_key) == ["i0", "i1", "i2", "i3"]
    assert {json.loads(o.body)["dollars"] for o in fixed} == {12.5}
    originals = {json.loads(o.body)["key"]: o.message_id for o in wrong}
    for key, output in by_key.items():
        assert output.message_id == originals[key]  # the stable id: consumers can tell
        assert output.headers[m.REPLAY_OF] == f"default:{key}"
    assert await depth(url, "zenoti.h.audit") == 10 + 4  # every original, and the window


async def test_reading_starts_at_the_window_not_at_the_first_delivery(url: str) -> None:
    await accept(url, [(f"old{n}", "Test.Audited", NOW - timedelta(minutes=5))
                       for n in range(50)])
    await asyncio.sleep(3.1)  # the stream's times are whole seconds
    since = datetime.now(UTC)
    await accept(url, [(f"new{n}", "Test.Audited", datetime.now(UTC)) for n in range(5)])
    summary = await run(url, plan(since, since + timedelta(minutes=1), late=0.0))
    assert (summary.read, summary.selected, summary.first_offset) == (5, 5, 50)


async def test_a_dry_run_counts_and_sends_nothing(url: str) -> None:
    await accept(url, [(f"k{n}", "Test.Priced", hours(-1)) for n in range(3)])
    queued = await depth(url, "zenoti.h.pricing")
    summary = await run(url, plan(hours(-2), NOW, dry_run=True))
    assert dict(summary.published) == {"pricing": 3, "audit": 3}
    assert await depth(url, "zenoti.h.pricing") == queued == 3


async def test_filters_handlers_and_what_cannot_be_replayed_are_counted(url: str) -> None:
    await accept(url, [("p1", "Test.Priced", hours(-1)), ("u1", "Test.Unknown", hours(-1)),
                       ("p1", "Test.Priced", hours(-1)),  # archived twice (the spool)
                       ("t1", "Test.Audited", hours(-1))])
    await accept(url, [("p2", "Test.Priced", hours(-1))], tenant="acme")
    async with channel(url) as ch:  # a body the ingress parked itself
        parked = await ch.get_exchange(topology.PARKED)
        await parked.publish(aio_pika.Message(b"not json", message_id="default:h", headers={
            m.TENANT: "default", m.RECEIVED_AT: hours(-1).isoformat(),
            m.REASON: "invalid_envelope"}), "invalid")
    summary = await run(url, plan(hours(-2), NOW, handlers=frozenset({"audit"})))
    assert (summary.read, summary.selected) == (6, 6)
    assert dict(summary.published) == {"audit": 3}  # p1 once, t1, acme's p2
    assert dict(summary.skipped) == {"no handler takes its type": 1,
                                     "a second copy in the archive": 1,
                                     "parked by the ingress": 1}
    only = replay.Plan(replay.Window(hours(-2), NOW, tenant="acme", event_type="test.priced"),
                       BINDINGS, by="test", idle=0.5, dry_run=True)
    assert dict((await run(url, only)).published) == {"pricing": 1, "audit": 1}


async def test_a_copy_carries_provenance_and_the_original_headers(url: str) -> None:
    await accept(url, [("p1", "Test.Priced", hours(-1))])
    async with channel(url) as ch:
        await (await ch.get_queue("zenoti.h.audit")).purge()
    await run(url, plan(hours(-2), NOW, handlers=frozenset({"audit"}), by="ops@example"))
    async with channel(url) as ch:
        copy = await (await ch.get_queue("zenoti.h.audit")).get(timeout=5)
        await copy.ack()
    assert copy.message_id == "default:p1" and copy.delivery_mode == 2
    assert copy.headers[m.REPLAY_OF] == "default:p1"
    assert copy.headers[m.REPLAYED_BY] == "ops@example"
    assert m.moment(copy.headers[m.REPLAYED_AT]) is not None
    assert copy.headers[m.EVENT_TYPE] == "Test.Priced" and copy.headers[m.TENANT] == "default"
    assert "x-stream-offset" not in copy.headers

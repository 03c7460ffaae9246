"""On the real broker: an output arrives on ``zenoti.enriched`` as a CloudEvent (its
``cloudEvents:`` properties and content type as published), and a version 2 published beside
version 1 reaches only the queues bound to its own routing key."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from processor import Context, Event
from processor.broker.topology import ENRICHED, Binding
from schemas.enriched import Output
from tests.conftest import Broker
from tests.integration.amqp import collect, listener, reset
from tests.integration.inprocess import send, settings_for, worker
from tests.unit.test_contract_cloudevents import ABSOLUTE_URI, RFC3339

pytestmark = pytest.mark.integration


class Item(BaseModel):
    n: int


class Counted(Output):
    """Version 1: the count as a number."""

    event_name: ClassVar[str] = "test.contract.counted"
    version: ClassVar[int] = 1

    key: str
    n: int


class CountedV2(Output):
    """Version 2, a breaking change: the count as text."""

    event_name: ClassVar[str] = "test.contract.counted"
    version: ClassVar[int] = 2

    key: str
    n: str


class Counting:
    """Publishes both versions of its output, as during a deprecation window."""

    name: ClassVar[str] = "contract"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Contract",)
    schema: ClassVar[type[BaseModel]] = Item
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (Counted, CountedV2)

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        await ctx.publish(Counted.routing_key(), Counted(key=event.key, n=event.data.n))
        await ctx.publish(CountedV2.routing_key(), CountedV2(key=event.key, n=str(event.data.n)))


@pytest.fixture
async def url(broker: Broker) -> str:
    await reset(broker.url, [Binding("contract", Counting.event_types)])
    return broker.url


async def test_an_output_arrives_with_its_cloudevents_properties(url: str) -> None:
    async with worker(settings_for(url), [Counting()]), \
            listener(url, ENRICHED, "test.contract.counted") as out:
        await send(url, "Test.Contract", "ce-1", {"n": 7})
        [message] = await collect(out, 1, timeout=15)
    headers = message.headers
    assert message.content_type == "application/json"  # the datacontenttype
    assert headers["cloudEvents:specversion"] == "1.0"
    assert headers["cloudEvents:id"] == message.message_id == (
        "default:ce-1:contract:test.contract.counted")
    assert headers["cloudEvents:source"] == "urn:zenoti-events:tenant:default"
    assert headers["cloudEvents:type"] == "test.contract.counted"
    assert headers["cloudEvents:subject"] == "events/ce-1"
    assert headers["cloudEvents:dataschema"] == "urn:zenoti-events:schema:test.contract.counted:v1"
    assert RFC3339.fullmatch(str(headers["cloudEvents:time"]))
    assert ABSOLUTE_URI.fullmatch(str(headers["cloudEvents:source"]))
    assert json.loads(message.body) == {"key": "ce-1", "n": 7, "schema_version": 1}


async def test_version_two_goes_beside_version_one_under_its_own_routing_key(url: str) -> None:
    async with worker(settings_for(url), [Counting()]), \
            listener(url, ENRICHED, "test.contract.counted") as v1, \
            listener(url, ENRICHED, "test.contract.#") as both:
        await send(url, "Test.Contract", "ce-2", {"n": 8})
        everything = await collect(both, 2, timeout=15)
        only_v1 = await collect(v1, 1, timeout=15)
        assert await collect(v1, 1, timeout=1) == []  # the v2 copy is not bound here
    assert [json.loads(m.body)["schema_version"] for m in only_v1] == [1]
    by_key = {m.routing_key or "": m for m in everything}
    assert sorted(by_key) == ["test.contract.counted", "test.contract.counted.v2"]
    v2 = by_key["test.contract.counted.v2"]
    assert json.loads(v2.body) == {"key": "ce-2", "n": "8", "schema_version": 2}
    assert v2.headers["cloudEvents:type"] == "test.contract.counted"  # one type, two schemas
    assert v2.headers["cloudEvents:dataschema"] == (
        "urn:zenoti-events:schema:test.contract.counted:v2")
    assert v2.message_id != by_key["test.contract.counted"].message_id

"""Retries through the real broker's delay queues keep their trace: every attempt is a span
under the delivery's context, linked to the first attempt, the headers surviving AMQP's
round trips as the worker reads them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from processor import ZenotiUnavailable
from processor import message as m
from processor.broker.topology import ENRICHED
from processor.tracing import Tracing
from tests.conftest import Broker
from tests.integration.amqp import collect, listener, reset
from tests.integration.inprocess import BINDINGS, Scripted, send, settings_for, worker

pytestmark = pytest.mark.integration

SENDER_TRACE = "0af7651916cd43dd8448eb211c80319c"
SENDER_SPAN = "b7ad6b7169203331"


async def test_each_attempt_through_the_delay_queues_is_a_span_linked_to_the_first(
    broker: Broker,
) -> None:
    await reset(broker.url, BINDINGS)
    Scripted.script.clear()
    Scripted.script["t1"] = [ZenotiUnavailable("503"), ZenotiUnavailable("503")]
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    async with (worker(settings_for(broker.url), [Scripted()], tracing=Tracing.of(provider)),
                listener(broker.url, ENRICHED) as out):
        await send(broker.url, "Test.Scripted", "t1", {"n": 1},
                   {m.TRACEPARENT: f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"})
        [output] = await collect(out, 1, timeout=15)
    attempts = [s for s in exported.get_finished_spans() if s.name.startswith("process ")]
    first = attempts[0]
    assert [_attribute(s, "zenoti.attempt") for s in attempts] == [1, 2, 3]
    assert [_attribute(s, "zenoti.fate") for s in attempts] == ["retry", "retry", "ok"]
    assert {f"{s.context.trace_id:032x}" for s in attempts} == {SENDER_TRACE}
    assert {f"{s.parent.span_id:016x}" for s in attempts if s.parent} == {SENDER_SPAN}
    assert [[link.context.span_id for link in s.links] for s in attempts] == [
        [], [first.context.span_id], [first.context.span_id]]
    [publish] = [s for s in exported.get_finished_spans() if s.name == f"publish {ENRICHED}"]
    assert str(output.headers[m.TRACEPARENT]).split("-")[1:3] == [
        SENDER_TRACE, f"{publish.context.span_id:016x}"]


def _attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)

"""The worker's spans on the in-memory broker: a CONSUMER span per attempt under the ingress's
context, the Zenoti calls and the output publish under it, the output's headers continuing
it, retries linked to the first attempt; and nothing at all with tracing off."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel, SecretStr

from processor import Context, Event, PermanentError, ZenotiUnavailable
from processor import message as m
from processor.broker.memory import MemoryBroker
from processor.broker.memory_client import MemoryMessage, Queued
from processor.broker.protocols import IncomingMessage
from processor.broker.topology import EVENTS, UNCLAIMED, Binding
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import RetryLimits, Settings
from processor.tracing import Tracing, carrier
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import Dispatcher
from processor.worker.retry import RetryPolicy
from processor.zenoti.clients import ZenotiClients
from tests.unit.test_zenoti_client import GUEST_BODY, GUEST_ID, INVOICE_BODY, INVOICE_ID

WORK = "zenoti.h.calls"
DELAY = "zenoti.h.calls.retry.5s"


class Item(BaseModel):
    n: int


class Out(BaseModel):
    guest: str


class Calls:
    """Raises the exceptions queued in ``script``, else reads the invoice and its guest from
    Zenoti and publishes ``Out``."""

    name: ClassVar[str] = "calls"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Calls",)
    schema: ClassVar[type[BaseModel]] = Item

    def __init__(self) -> None:
        self.script: list[Exception] = []

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        if self.script:
            raise self.script.pop(0)
        invoice = await ctx.zenoti.get_invoice(INVOICE_ID)
        guest = await ctx.zenoti.get_guest(invoice.guest.id if invoice.guest else "")
        await ctx.publish("test.out", Out(guest=guest.id))


def zenoti(request: httpx.Request) -> httpx.Response:
    body = GUEST_BODY if request.url.path == f"/v1/guests/{GUEST_ID}" else INVOICE_BODY
    return httpx.Response(200, json=body)


class Rig:
    """A ``Dispatcher`` of ``Calls`` over a ``MemoryBroker``, traced when given ``tracing``,
    and the ingress span an event's headers name (``send``)."""

    def __init__(self, tracing: Tracing | None, http: httpx.AsyncClient) -> None:
        self.tracing = tracing
        self.broker = MemoryBroker([Binding("calls", Calls.event_types)], retry_tiers=[5.0])
        self.handler = Calls()
        settings = Settings(api_key=SecretStr("k"), redis_url=None, snapshot_kinds=[])
        self.clients = ZenotiClients(settings, Metrics(), http=http,
                                     tracer_provider=tracing.provider if tracing else None)
        limits = RetryLimits(max_attempts=3, max_age_seconds=3600)
        self.dispatcher = Dispatcher(
            self.handler, publisher=self.broker.publisher, clients=self.clients,
            tenants=frozenset({"default"}),
            retry=RetryPolicy("calls", [5.0], limits, random.Random(7)),
            done=MemoryDeduplicator(600, 100), metrics=Metrics(), log=get_logger(test="t"),
            tracer=tracing.tracer if tracing else None)

    def send(self, key: str = "k1") -> dict[str, Any]:
        """Publish an event as the ingress would, inside an ingress span when tracing; return
        its headers."""
        headers: dict[str, Any] = {m.TENANT: "default", m.EVENT_TYPE: "Test.Calls"}
        if self.tracing is not None:
            with self.tracing.tracer.start_as_current_span("POST /webhooks/zenoti",
                                                           kind=SpanKind.SERVER):
                carrier.inject(headers)
        body = json.dumps({"event_id": key, "event_type": "Test.Calls", "data": {"n": 1}})
        self.broker.route(EVENTS, "test.calls", Queued(
            body.encode(), headers, message_id=f"default:{key}", content_type="application/json"))
        return headers

    async def run(self) -> int:
        async def consume(message: IncomingMessage) -> None:
            assert isinstance(message, MemoryMessage)
            await self.dispatcher(message)

        return await self.broker.deliver(WORK, consume)


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url="https://zenoti.test",
                                 transport=httpx.MockTransport(zenoti)) as client:
        yield client


@pytest.fixture
async def rig(exported: InMemorySpanExporter, http: httpx.AsyncClient) -> AsyncIterator[Rig]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    made = Rig(Tracing.of(provider), http)
    yield made
    await made.clients.aclose()


def named(exported: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    spans: dict[str, list[ReadableSpan]] = {}
    for span in exported.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


async def test_a_message_is_a_consumer_span_under_the_ingress_span_with_its_handler_and_fate(
    rig: Rig, exported: InMemorySpanExporter,
) -> None:
    rig.send()
    assert await rig.run() == 1
    spans = named(exported)
    [ingress], [worker] = spans["POST /webhooks/zenoti"], spans[f"process {WORK}"]
    assert worker.kind is SpanKind.CONSUMER
    assert worker.context.trace_id == ingress.context.trace_id
    assert parent_of(worker) == ingress.context.span_id
    assert attribute(worker, "zenoti.handler") == "calls"
    assert attribute(worker, "zenoti.fate") == "ok"
    assert attribute(worker, "zenoti.attempt") == 1
    assert attribute(worker, "messaging.message.id") == "default:k1"
    assert worker.links == ()


async def test_every_zenoti_call_is_a_client_span_under_the_message_span(
    rig: Rig, exported: InMemorySpanExporter,
) -> None:
    rig.send()
    await rig.run()
    spans = named(exported)
    [worker] = spans[f"process {WORK}"]
    [invoice], [guest] = spans["GET invoice"], spans["GET guest"]
    for call in (invoice, guest):
        assert call.kind is SpanKind.CLIENT
        assert parent_of(call) == worker.context.span_id
    assert attribute(guest, "zenoti.endpoint") == "guest"
    # The instrumentation's attribute names follow OTEL_SEMCONV_STABILITY_OPT_IN (old or new).
    status = attribute(guest, "http.response.status_code") or attribute(guest, "http.status_code")
    assert status == 200


async def test_the_output_publish_is_a_producer_span_whose_context_the_output_carries(
    rig: Rig, exported: InMemorySpanExporter,
) -> None:
    rig.send()
    await rig.run()
    spans = named(exported)
    [worker], [publish] = spans[f"process {WORK}"], spans["publish zenoti.enriched"]
    assert publish.kind is SpanKind.PRODUCER and parent_of(publish) == worker.context.span_id
    assert attribute(publish, "messaging.rabbitmq.destination.routing_key") == "test.out"
    [output] = rig.broker.messages(UNCLAIMED)
    _, trace, span, _ = output.headers[m.TRACEPARENT].split("-")
    assert (trace, span) == (f"{publish.context.trace_id:032x}",
                             f"{publish.context.span_id:016x}")


async def test_a_retry_is_a_sibling_attempt_linked_to_the_first(
    rig: Rig, exported: InMemorySpanExporter,
) -> None:
    sent = rig.send()
    rig.handler.script = [ZenotiUnavailable("down"), ZenotiUnavailable("down")]
    await rig.run()
    [copy] = rig.broker.messages(DELAY)
    assert copy.headers[m.TRACEPARENT] == sent[m.TRACEPARENT]  # the delivery's own context
    for _ in range(2):
        rig.broker.advance(5.0)
        await rig.run()
    spans = named(exported)
    [ingress], attempts = spans["POST /webhooks/zenoti"], spans[f"process {WORK}"]
    first, second, third = attempts
    assert [attribute(a, "zenoti.fate") for a in attempts] == ["retry", "retry", "ok"]
    assert [attribute(a, "zenoti.attempt") for a in attempts] == [1, 2, 3]
    assert {parent_of(a) for a in attempts} == {ingress.context.span_id}
    assert first.links == () and first.status.status_code is StatusCode.ERROR
    for later in (second, third):
        [link] = later.links
        assert link.context.span_id == first.context.span_id


async def test_a_dead_letter_and_a_duplicate_say_so(
    rig: Rig, exported: InMemorySpanExporter,
) -> None:
    rig.handler.script = [PermanentError("no such thing")]
    rig.send("k1")
    rig.send("k2")
    rig.send("k2")
    await rig.run()
    fates = [attribute(s, "zenoti.fate") for s in named(exported)[f"process {WORK}"]]
    assert fates == ["dead_letter", "ok", "duplicate"]


async def test_with_tracing_off_no_span_is_made_and_no_header_added(
    exported: InMemorySpanExporter, http: httpx.AsyncClient,
) -> None:
    rig = Rig(None, http)
    rig.handler.script = [ZenotiUnavailable("down")]
    rig.send()
    await rig.run()
    [copy] = rig.broker.messages(DELAY)
    rig.broker.advance(5.0)
    await rig.run()
    [output] = rig.broker.messages(UNCLAIMED)
    for headers in (copy.headers, output.headers):
        assert not {m.TRACEPARENT, m.TRACESTATE, m.FIRST_ATTEMPT} & set(headers)
    assert not hasattr(http, "_is_instrumented_by_opentelemetry")
    assert exported.get_finished_spans() == ()
    await rig.clients.aclose()

"""The ingress's span per delivery: it continues a verified sender's traceparent, else starts
a trace, says how the delivery ended, and its context travels in the published (or spooled)
headers; malformed trace headers read as absent and log nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from pydantic import SecretStr
from structlog.testing import capture_logs

from processor import message as m
from processor.broker.protocols import Headers
from processor.broker.publisher import ConfirmedPublisher
from processor.ingress.app import Ingress
from processor.ingress.signature import sign
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import Settings
from processor.spool.forwarder import Forwarder
from processor.spool.spool import Spool
from processor.tracing import Tracing, carrier
from processor.worker.dedupe import MemoryDeduplicator

SECRET = "tracing-test-secret"
SENDER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"
BODY = json.dumps({"event_id": "ev-1", "event_type": "Guest.Membership.Freeze",
                   "data": {"n": 1}}).encode()


class Recording(ConfirmedPublisher):
    """Confirms every publish at once (no broker) and keeps what was published; not ``ready``
    until told, so that the ingress spools."""

    def __init__(self, ready: bool = True) -> None:
        super().__init__("amqp://guest:guest@127.0.0.1:1/", log=get_logger(test="tracing"),
                         metrics=Metrics())
        self.taken: list[tuple[str, str, dict[str, Any]]] = []
        self.up = ready

    @property
    def ready(self) -> bool:
        return self.up

    async def publish(self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
                      headers: Headers | None = None, confirm_timeout: float = 5.0,
                      content_type: str = "application/json", **_: Any) -> None:
        self.taken.append((exchange, message_id, dict(headers or {})))


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exported: InMemorySpanExporter) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return Tracing.of(provider)


def _ingress(tracing: Tracing | None, publisher: Recording, spool: Spool | None = None
             ) -> Ingress:
    settings = Settings(webhook_secrets=[SecretStr(SECRET)], redis_url=None)
    return Ingress(settings, publisher, Metrics(), get_logger(test="tracing"),
                   MemoryDeduplicator(600, 100), spool,
                   tracer=tracing.tracer if tracing else None)


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(ingress: Ingress) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(ingress.app()))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def _post(client: TestClient[Any, Any], body: bytes = BODY,
                **headers: str) -> int:
    signed = {"zenoti-webhook-signature": sign(SECRET, body), **headers}
    response = await client.post("/webhooks/zenoti", data=body, headers=signed)
    return response.status


def _ids(traceparent: str) -> tuple[str, str]:
    """The trace and parent span ids of a ``traceparent`` (its flags aside)."""
    _, trace, span, _ = traceparent.split("-")
    return trace, span


def _only(exported: InMemorySpanExporter) -> ReadableSpan:
    [span] = exported.get_finished_spans()
    return span


async def test_a_delivery_with_a_traceparent_continues_the_senders_trace(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    publisher = Recording()
    client = await client_of(_ingress(tracing, publisher))
    assert await _post(client, traceparent=TRACEPARENT) == 202
    span = _only(exported)
    assert span.kind is SpanKind.SERVER and span.name == "POST /webhooks/zenoti"
    assert format(span.context.trace_id, "032x") == SENDER_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == SENDER_SPAN
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "http.request.method": "POST", "http.route": "/webhooks/zenoti",
        "http.response.status_code": 202, "zenoti.tenant": "default",
        "zenoti.outcome": "accepted", "zenoti.event_type": "Guest.Membership.Freeze",
        "messaging.message.id": "default:ev-1"}
    [(_, _, headers)] = publisher.taken
    assert _ids(headers[m.TRACEPARENT]) == (SENDER_TRACE, f"{span.context.span_id:016x}")


async def test_a_delivery_without_a_traceparent_starts_a_trace_the_message_carries(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    publisher = Recording()
    client = await client_of(_ingress(tracing, publisher))
    assert await _post(client) == 202
    span = _only(exported)
    assert span.parent is None
    [(_, _, headers)] = publisher.taken
    assert _ids(headers[m.TRACEPARENT]) == (
        f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")


async def test_a_refused_delivery_is_a_span_with_its_status_and_no_publish(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    client = await client_of(_ingress(tracing, Recording()))
    response = await client.post("/webhooks/zenoti", data=BODY,
                                 headers={"zenoti-webhook-signature": "sha256=00"})
    assert response.status == 401
    span = _only(exported)
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 401
    assert span.attributes["zenoti.outcome"] == "invalid_signature"
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's, not ours


async def test_without_a_tracer_nothing_is_recorded_and_no_header_added(
    exported: InMemorySpanExporter, client_of: Any,
) -> None:
    publisher = Recording()
    client = await client_of(_ingress(None, publisher))
    assert await _post(client, traceparent=TRACEPARENT) == 202
    assert exported.get_finished_spans() == ()
    [(_, _, headers)] = publisher.taken
    assert m.TRACEPARENT not in headers and m.TRACESTATE not in headers


async def test_a_spooled_delivery_keeps_its_context_when_forwarded(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any, tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024 * 1024, segment_bytes=1024 * 1024,
                  metrics=Metrics(), log=get_logger(test="tracing"))
    await spool.open()
    publisher = Recording(ready=False)  # no broker: the delivery goes to the spool
    client = await client_of(_ingress(tracing, publisher, spool))
    assert await _post(client, traceparent=TRACEPARENT, tracestate="vendor=1") == 202
    assert publisher.taken == [] and not spool.empty
    forwarder = Forwarder(spool, publisher, confirm_timeout=1.0, log=get_logger(test="t"))
    assert await forwarder.forward_batch()
    [(_, _, headers)] = publisher.taken  # published, not kept aside as untrusted
    span = _only(exported)
    assert _ids(headers[m.TRACEPARENT]) == (SENDER_TRACE, f"{span.context.span_id:016x}")
    assert headers[m.TRACESTATE] == "vendor=1"
    await spool.close()


async def test_a_senders_tracestate_past_512_characters_is_not_carried(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    publisher = Recording()
    client = await client_of(_ingress(tracing, publisher))
    state = ",".join(f"v{n}=" + "x" * 200 for n in range(20))
    assert await _post(client, traceparent=TRACEPARENT, tracestate=state) == 202
    [(_, _, headers)] = publisher.taken
    assert _ids(headers[m.TRACEPARENT])[0] == SENDER_TRACE and m.TRACESTATE not in headers


BAD_TRACE_HEADERS = [
    {"traceparent": "00-" + "a" * 600},  # over the propagator's 512: it would warn
    {"traceparent": TRACEPARENT + "-" + "x" * 300},  # version 00 with a tail
    {"traceparent": TRACEPARENT.upper()},
    {"traceparent": "ff" + TRACEPARENT[2:]},
    {"traceparent": TRACEPARENT, "tracestate": "not a member " + "y" * 400},  # quoted
    {"traceparent": TRACEPARENT, "tracestate": ",".join(f"k{n}=v" for n in range(40))},
    {"traceparent": TRACEPARENT, "tracestate": "v=" + "z" * 8000},  # over 512
    {"traceparent": TRACEPARENT,  # well-formed members, over 512 in all
     "tracestate": ",".join(f"v{n}=" + "x" * 200 for n in range(20))},
]


async def test_a_flood_of_malformed_trace_headers_logs_nothing(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await client_of(_ingress(tracing, Recording()))
    with capture_logs() as logged:
        for n in range(20):
            for headers in BAD_TRACE_HEADERS:
                body = json.dumps({"event_id": f"ev-{n}", "event_type": "Guest.Created",
                                   "data": {}}).encode()
                assert await _post(client, body, **headers) in (200, 202)
    assert logged == []
    assert [r.getMessage()[:80] for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(exported.get_finished_spans()) == 20 * len(BAD_TRACE_HEADERS)


@pytest.mark.parametrize("headers", BAD_TRACE_HEADERS)
def test_a_malformed_traceparent_or_oversized_tracestate_reads_as_absent(
    headers: dict[str, str],
) -> None:
    context = get_current_span(carrier.extract(headers)).get_span_context()
    if headers["traceparent"] != TRACEPARENT:
        assert not context.is_valid and carrier.well_formed(headers) == {}
        return
    assert context.is_valid and not context.trace_state  # malformed or oversized: no state
    if len(headers["tracestate"]) > 512:  # never parsed
        assert carrier.well_formed(headers) == {"traceparent": TRACEPARENT}


def _unsigned_ingress(tracing: Tracing, publisher: Recording) -> Ingress:
    settings = Settings(allow_unsigned=True, redis_url=None)
    return Ingress(settings, publisher, Metrics(), get_logger(test="tracing"),
                   MemoryDeduplicator(600, 100), tracer=tracing.tracer)


def _a_new_trace(span: ReadableSpan) -> bool:
    return span.parent is None and format(span.context.trace_id, "032x") != SENDER_TRACE


@pytest.mark.parametrize(("path", "signature", "status", "outcome"), [
    ("/webhooks/zenoti", "sha256=00", 401, "invalid_signature"),
    ("/webhooks/zenoti/nobody", None, 404, "unknown_tenant"),
])
async def test_a_refused_request_never_continues_the_senders_trace(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any, path: str,
    signature: str | None, status: int, outcome: str,
) -> None:
    client = await client_of(_ingress(tracing, Recording()))
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    if signature:
        headers["zenoti-webhook-signature"] = signature
    response = await client.post(path, data=BODY, headers=headers)
    assert response.status == status
    span = _only(exported)
    assert _a_new_trace(span) and not span.links and not span.context.trace_state
    assert span.kind is SpanKind.SERVER and span.attributes is not None
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["zenoti.outcome"] == outcome


async def test_an_unsigned_tenants_delivery_starts_a_trace_of_its_own(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    publisher = Recording()
    client = await client_of(_unsigned_ingress(tracing, publisher))
    response = await client.post("/webhooks/zenoti", data=BODY,
                                 headers={"traceparent": TRACEPARENT})
    assert response.status == 202
    span = _only(exported)
    assert _a_new_trace(span) and not span.links
    [(_, _, headers)] = publisher.taken
    assert _ids(headers[m.TRACEPARENT]) == (
        f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")


async def test_a_sender_cannot_force_sampling_without_a_valid_signature(
    client_of: Any,
) -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # roots: none sampled
    provider.add_span_processor(SimpleSpanProcessor(exported))
    client = await client_of(_ingress(Tracing.of(provider), Recording()))
    for _ in range(10):  # sampled flag 01, refused: each a root, not sampled
        response = await client.post("/webhooks/zenoti", data=BODY, headers={
            "traceparent": TRACEPARENT, "zenoti-webhook-signature": "sha256=00"})
        assert response.status == 401
    assert exported.get_finished_spans() == ()
    assert await _post(client, traceparent=TRACEPARENT) == 202  # signed: the flag is obeyed
    assert format(_only(exported).context.trace_id, "032x") == SENDER_TRACE


async def test_the_span_of_a_verified_delivery_starts_when_the_request_arrived(
    tracing: Tracing, exported: InMemorySpanExporter, client_of: Any,
) -> None:
    client = await client_of(_ingress(tracing, Recording()))

    async def slowly() -> AsyncIterator[bytes]:  # the body takes 0.3 s to arrive
        for part in (BODY[:10], BODY[10:]):
            yield part
            await asyncio.sleep(0.15)

    began = time.time_ns()
    response = await client.post("/webhooks/zenoti", data=slowly(), headers={
        "traceparent": TRACEPARENT, "zenoti-webhook-signature": sign(SECRET, BODY)})
    assert response.status == 202
    span = _only(exported)
    assert span.parent is not None and format(span.parent.span_id, "016x") == SENDER_SPAN
    assert span.start_time is not None and span.end_time is not None
    assert began <= span.start_time and span.end_time - span.start_time >= 250_000_000

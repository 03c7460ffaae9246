"""What the Zenoti calls' tracing shows Zenoti and the trace back end: Zenoti gets our CLIENT
span's traceparent and no other trace header (no sender's tracestate, no baggage); the span's
URL is the call's path template, without ids or query; captured headers never show the API
key, whatever the OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* variables say."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from pydantic import SecretStr

from processor.metrics import Metrics
from processor.settings import Settings
from processor.tracing.publishing import SANITIZE
from processor.zenoti.clients import ZenotiClients
from tests.unit.test_zenoti_client import CENTER_ID, GUEST_BODY, GUEST_ID

API_KEY = "zenoti-secret-api-key"
SENDER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CAPTURE = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": ".*",
           "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": ".*"}


class Zenoti:
    """Answers every call with the guest (or an empty membership list), a cookie set, and
    keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body: dict[str, Any] = (GUEST_BODY if request.url.path == f"/v1/guests/{GUEST_ID}"
                                else {"guest_memberships": [], "error": None})
        return httpx.Response(200, json=body, headers={"set-cookie": "session=s3cr3t"})


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def zenoti() -> Zenoti:
    return Zenoti()


@pytest.fixture
async def clients(exported: InMemorySpanExporter, zenoti: Zenoti,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ZenotiClients]:
    for name, value in CAPTURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(SANITIZE, raising=False)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    settings = Settings(api_key=SecretStr(API_KEY), redis_url=None, snapshot_kinds=[])
    async with httpx.AsyncClient(base_url="https://zenoti.test",
                                 transport=httpx.MockTransport(zenoti)) as http:
        made = ZenotiClients(settings, Metrics(), http=http, tracer_provider=provider)
        yield made
        await made.aclose()


@contextmanager
def under_a_senders_span() -> Iterator[None]:
    """The current context: a sender's span with a tracestate, and baggage."""
    sender = SpanContext(SENDER_TRACE, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED),
                         trace_state=TraceState([("vendor", "sender-secret")]))
    context = baggage.set_baggage("user", "someone",
                                  set_span_in_context(NonRecordingSpan(sender)))
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def client_spans(exported: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exported.get_finished_spans() if s.kind is SpanKind.CLIENT]


async def test_zenoti_gets_our_traceparent_and_no_other_trace_header(
    clients: ZenotiClients, zenoti: Zenoti, exported: InMemorySpanExporter,
) -> None:
    with under_a_senders_span():
        await clients.for_tenant("default").get_guest(GUEST_ID)
    [request] = zenoti.requests
    [span] = client_spans(exported)
    assert request.headers["traceparent"] == (
        f"00-{SENDER_TRACE:032x}-{span.context.span_id:016x}-01")
    assert "tracestate" not in request.headers and "baggage" not in request.headers
    assert request.headers["authorization"] == f"apikey {API_KEY}"  # Zenoti's, of course


async def test_the_span_shows_the_path_template_and_never_the_ids_or_the_key(
    clients: ZenotiClients, exported: InMemorySpanExporter,
) -> None:
    client = clients.for_tenant("default")
    await client.get_guest(GUEST_ID)
    await client.list_memberships(GUEST_ID, CENTER_ID)
    guest, memberships = client_spans(exported)
    for span, template in [(guest, "/v1/guests/{guest_id}"),
                           (memberships, "/v1/guests/{guest_id}/memberships")]:
        attributes = dict(span.attributes or {})
        urls = {attributes.get("url.full"), attributes.get("http.url")} - {None}
        assert urls == {f"https://zenoti.test{template}"}
        assert attributes["url.template"] == template
        assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
        assert attributes["http.response.header.set_cookie"] == ("[REDACTED]",)
        shown = repr(attributes)
        for secret in (API_KEY, GUEST_ID, CENTER_ID, "s3cr3t"):
            assert secret not in shown


async def test_the_operators_own_sanitized_names_still_apply_and_the_variable_is_left_as_it_was(
    exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in CAPTURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANITIZE, "x-private")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    settings = Settings(api_key=SecretStr(API_KEY), redis_url=None, snapshot_kinds=[])
    async with httpx.AsyncClient(base_url="https://zenoti.test",
                                 transport=httpx.MockTransport(Zenoti())) as http:
        clients = ZenotiClients(settings, Metrics(), http=http, tracer_provider=provider)
        assert os.environ[SANITIZE] == "x-private"
        await http.get("/v1/centers", headers={"x-private": "p", "x-api-key": API_KEY})
        await clients.aclose()
    [span] = client_spans(exported)
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.x_private"] == ("[REDACTED]",)
    assert attributes["http.request.header.x_api_key"] == ("[REDACTED]",)
    assert attributes.get("url.full", attributes.get("http.url")) == "https://zenoti.test/"

"""One trace through the real processes: a signed delivery with the sender's ``traceparent``
goes through the ingress, RabbitMQ, the worker and the Zenoti sandbox, and every process
exports OTLP over HTTP to a collector stand-in served here; the trace must hold the ingress
span, the worker's, one span per Zenoti call the worker counted, and the output publish, each
under the right parent. Prints the span tree (``docs/observability.md`` quotes one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from processor import message as m
from processor.broker import topology
from processor.dev.deliveries import Delivery
from tests.conftest import Broker
from tests.integration.amqp import collect, listener, reset
from tests.integration.processes import SECRET, Stack
from tests.integration.test_end_to_end import ALL, OUTPUTS, one_of_each_kind

pytestmark = pytest.mark.integration

SENDER_TRACE = "5b8efff798038103d269b633813fc60c"
SENDER_SPAN = "eee19b7ec3c1b174"
KIND = {Span.SPAN_KIND_SERVER: "SERVER", Span.SPAN_KIND_CONSUMER: "CONSUMER",
        Span.SPAN_KIND_CLIENT: "CLIENT", Span.SPAN_KIND_PRODUCER: "PRODUCER",
        Span.SPAN_KIND_INTERNAL: "INTERNAL"}


class Got:
    """A span as the collector received it, with the service that sent it."""

    def __init__(self, span: Span, service: str) -> None:
        self.span, self.service = span, service
        self.name, self.kind = span.name, KIND.get(span.kind, str(span.kind))
        self.id, self.parent = span.span_id.hex(), span.parent_span_id.hex() or None
        self.trace = span.trace_id.hex()
        self.attributes: dict[str, Any] = {
            a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
            for a in span.attributes}


class Collector:
    """An OTLP/HTTP collector stand-in on ``url``: decodes each ``ExportTraceServiceRequest``
    (protobuf) posted to ``/v1/traces`` and keeps its spans."""

    def __init__(self) -> None:
        self.spans: list[Got] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                collector.keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def keep(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource in request.resource_spans:
                service = next((a.value.string_value for a in resource.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource.scope_spans:
                    self.spans.extend(Got(span, service) for span in scope.spans)

    def of_trace(self, trace: str) -> list[Got]:
        with self._lock:
            return [s for s in self.spans if s.trace == trace]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    made = Collector()
    yield made
    made.close()


def tree(spans: list[Got], root: str | None, depth: int = 0) -> list[str]:
    """The spans under ``root`` as indented lines, in start order."""
    lines: list[str] = []
    for span in sorted((s for s in spans if s.parent == root),
                       key=lambda s: s.span.start_time_unix_nano):
        millis = (span.span.end_time_unix_nano - span.span.start_time_unix_nano) / 1e6
        shown = {k: v for k, v in span.attributes.items() if k.startswith("zenoti.")}
        lines.append(f"{'    ' * depth}{span.name} [{span.kind}, {span.service}, "
                     f"{millis:.1f} ms] {shown}")
        lines.extend(tree(spans, span.id, depth + 1))
    return lines


def api_calls(worker_port: int) -> int:
    """The worker's ``zenoti_events_api_calls_total``, all endpoints and statuses."""
    text = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "zenoti_events_api_calls"
                   for sample in family.samples if sample.name.endswith("_total")))


async def test_one_trace_holds_the_delivery_the_message_every_zenoti_call_and_the_publish(
    broker: Broker, collector: Collector,
) -> None:
    await reset(broker.url, ALL)
    otel = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200", "ZENOTI_EVENTS_RECONNECT_MAX_DELAY": "1"}
    delivery = next(d for d in one_of_each_kind() if d.event_type == "Guest.Membership.Freeze")
    with Stack(broker.url, settings=otel) as running:
        running.sandbox()
        running.ingress()
        running.worker()
        async with listener(running.amqp_url, topology.ENRICHED) as received:
            headers = {**Delivery(delivery.body, "", "").headers(SECRET),
                       "traceparent": f"00-{SENDER_TRACE}-{SENDER_SPAN}-01"}
            answer = httpx.post(running.webhook_url, content=delivery.body, headers=headers,
                                timeout=10)
            assert answer.status_code == 202
            [output] = await collect(received, 1)
        assert output.routing_key == OUTPUTS[delivery.event_type]
        calls = api_calls(running.worker_port)
        assert running.stop() == [0, 0, 0]  # the ingress and worker flush their spans
    spans = wait_for_trace(collector, calls + 3)
    print("\n".join(tree(spans, SENDER_SPAN)))
    check_parents(spans, calls, str(output.headers[m.TRACEPARENT]))


def wait_for_trace(collector: Collector, count: int, within: float = 15.0) -> list[Got]:
    deadline = time.monotonic() + within
    while len(spans := collector.of_trace(SENDER_TRACE)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return spans


def check_parents(spans: list[Got], calls: int, output_traceparent: str) -> None:
    by_kind: dict[str, list[Got]] = {}
    for span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    [ingress], [worker] = by_kind["SERVER"], by_kind["CONSUMER"]
    [publish] = by_kind["PRODUCER"]
    zenoti = by_kind.get("CLIENT", [])
    assert (ingress.service, ingress.parent) == ("zenoti-events-ingress", SENDER_SPAN)
    assert ingress.attributes["zenoti.outcome"] == "accepted"
    assert (worker.service, worker.parent) == ("zenoti-events-worker", ingress.id)
    assert worker.attributes["zenoti.handler"] == "membership-freeze"
    assert worker.attributes["zenoti.fate"] == "ok"
    assert calls >= 2 and len(zenoti) == calls  # a span for every call the worker counted
    assert {s.parent for s in zenoti} == {worker.id}
    assert all(s.name.startswith("GET ") for s in zenoti)
    assert (publish.name, publish.parent) == ("publish zenoti.enriched", worker.id)
    assert output_traceparent.split("-")[1:3] == [SENDER_TRACE, publish.id]

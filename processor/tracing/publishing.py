"""Spans around what the worker sends out: a PRODUCER span per output publish, and the
Zenoti API calls (the httpx instrumentation, scoped to our client alone).

``TracedPublisher`` wraps a publisher (the ``Publisher`` protocol of ``processor.broker``,
matched structurally here so this bottom layer imports nothing above it): each publish is a
``publish <exchange>`` span, child of the current one (the message's), whose context is
written into the published headers, so a consumer of ``zenoti.enriched`` continues the trace.
Attributes: ``messaging.system``, ``messaging.operation.*`` (send / publish),
``messaging.destination.name`` (the exchange), ``messaging.rabbitmq.destination.routing_key``,
``messaging.message.id``, ``messaging.message.body.size``; an error status when it is not
confirmed (``BrokerUnavailable``) or refused.

``instrument_http`` makes each HTTP request of the client a CLIENT span, named
``GET <endpoint>`` after the call's fixed endpoint label (the ``endpoint`` label of
``zenoti_events_api_calls_total``, given in the request's ``zenoti.endpoint`` extension),
never after its ids; every attempt of an in-place retry is a span of its own. Zenoti is a
partner's API, and a trace back end is no place for its credentials or for guests' ids:

- the request carries our CLIENT span's ``traceparent`` and no other trace header: no
  ``tracestate`` (a sender's, continued from a webhook, is not Zenoti's to see), no
  ``baggage``, nothing another propagator (``OTEL_PROPAGATORS``) would add;
- the span's URL (``url.full``, or ``http.url`` under the old conventions) is the call's path
  template (``zenoti.route``: ``/v1/guests/{guest_id}``) on Zenoti's host, without the ids
  or the query, and ``url.template`` says the same;
- headers captured by ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` always have
  ``authorization``, any ``api-key`` and ``cookie`` header and anything named a token or a
  secret redacted, whatever ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``
  says (its own names are redacted too).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.propagate import get_global_textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes

from processor.message import TRACEPARENT
from processor.tracing.carrier import inject

ENDPOINT = "zenoti.endpoint"  # the httpx request extension naming a call's endpoint
ROUTE = "zenoti.route"  # the httpx request extension giving its path template
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
# Always redacted when headers are captured (regular expressions, searched without case).
SENSITIVE_HEADERS = ("authorization", "api[-_]?key", "cookie", "token", "secret")
_URL_ATTRIBUTES = ("url.full", "http.url")
_ROUTING_KEY = 255  # AMQP's bound of a routing key, in bytes


class _Publishing(Protocol):
    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
        headers: Any = None, confirm_timeout: float = 5.0,
        content_type: str = "application/json",
    ) -> None: ...


class TracedPublisher:
    """``publisher``, with a PRODUCER span per publish and its context in the headers."""

    def __init__(self, publisher: _Publishing, tracer: Tracer) -> None:
        self._publisher = publisher
        self._tracer = tracer

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
        headers: Any = None, confirm_timeout: float = 5.0,
        content_type: str = "application/json",
    ) -> None:
        """As the wrapped publisher's ``publish``, inside a span; ``headers`` are copied,
        never changed in place."""
        attributes: dict[str, str | int] = {
            "messaging.system": "rabbitmq", "messaging.operation.type": "send",
            "messaging.operation.name": "publish", "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key[:_ROUTING_KEY],
            "messaging.message.id": message_id, "messaging.message.body.size": len(body),
        }
        # Not made current: nothing nests under a publish, and attaching a context costs
        # about a third of the span.
        span = self._tracer.start_span(f"publish {exchange}", kind=SpanKind.PRODUCER,
                                       attributes=attributes)
        carried = dict(headers or {})
        inject(carried, set_span_in_context(span))
        try:
            await self._publisher.publish(
                exchange, routing_key, body, message_id=message_id, headers=carried,
                confirm_timeout=confirm_timeout, content_type=content_type)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()


def instrument_http(client: httpx.AsyncClient, provider: TracerProvider) -> None:
    """Trace every request ``client`` sends, through ``provider`` (no other client of the
    process is touched: the instrumentation wraps this client's transports alone), as the
    module says: our ``traceparent`` alone sent, URLs as templates, secrets redacted."""
    # Beneath the instrumentation, which calls them once it has written its trace headers.
    client._transport = OwnTraceparentOnly(client._transport)
    for pattern, transport in list(client._mounts.items()):
        if transport is not None:
            client._mounts[pattern] = OwnTraceparentOnly(transport)
    with _sanitizing():  # the instrumentation reads the variable as it wraps
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider,
                                                  request_hook=_name_after_endpoint)


@contextmanager
def _sanitizing() -> Iterator[None]:
    """``SANITIZE`` holding ``SENSITIVE_HEADERS`` as well as its own names, for the block."""
    before = os.environ.get(SANITIZE)
    own = [name.strip() for name in (before or "").split(",") if name.strip()]
    os.environ[SANITIZE] = ",".join([*SENSITIVE_HEADERS, *own])
    try:
        yield
    finally:
        if before is None:
            del os.environ[SANITIZE]
        else:
            os.environ[SANITIZE] = before


class OwnTraceparentOnly(httpx.AsyncBaseTransport):
    """A transport that sends a request with the current (CLIENT) span's ``traceparent`` and
    no other trace header, whatever the propagators wrote."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for name in {*get_global_textmap().fields, "traceparent", "tracestate", "baggage"}:
            request.headers.pop(name, None)
        context = get_current_span().get_span_context()
        if context.is_valid:
            request.headers[TRACEPARENT] = (f"00-{context.trace_id:032x}-"
                                            f"{context.span_id:016x}-{context.trace_flags:02x}")
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> OwnTraceparentOnly:
        await self._transport.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None = None,
                        error: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        await self._transport.__aexit__(kind, error, traceback)


async def _name_after_endpoint(span: Span, request: RequestInfo) -> None:
    if not span.is_recording():
        return
    extensions = request.extensions or {}
    endpoint, route = extensions.get(ENDPOINT), extensions.get(ROUTE)
    if isinstance(endpoint, str):
        method = request.method.decode() if isinstance(request.method, bytes) else request.method
        span.update_name(f"{method} {endpoint}")
        span.set_attribute(ENDPOINT, endpoint)
    url = request.url
    scheme, host, port = ((url.scheme, url.host, url.port) if isinstance(url, httpx.URL)
                          else (url[0].decode(), url[1].decode(), url[2]))
    template = route if isinstance(route, str) else ""  # no template: the host alone
    # Never the userinfo, the ids or the query.
    shown = f"{scheme}://{host}{f':{port}' if port else ''}{template or '/'}"
    if template:
        span.set_attribute("url.template", template)
    recorded: Attributes = getattr(span, "attributes", None)
    for name in _URL_ATTRIBUTES:
        if recorded is None or name in recorded:
            span.set_attribute(name, shown)

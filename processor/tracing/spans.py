"""Our own spans: one per delivery at the ingress, one per message in the worker.

Every attribute has a bounded size, and their names follow OpenTelemetry's semantic
conventions where one fits (HTTP server, messaging), else ``zenoti.*``:

==========================  =========================================================  =======
span (kind)                 attributes                                                 status
==========================  =========================================================  =======
``POST /webhooks/zenoti``   ``http.request.method``, ``http.route``,                   error
(or ``/{tenant}``; SERVER)  ``http.response.status_code``, ``zenoti.tenant``,          on 5xx
                            ``zenoti.outcome`` (the ``deliveries_total`` label),
                            ``zenoti.event_type``, ``messaging.message.id``
``process zenoti.h.<name>`` ``messaging.system`` (rabbitmq), ``messaging.operation.*``  error on
(CONSUMER)                  (process), ``messaging.destination.name`` (the queue),     retry,
                            ``messaging.message.id``, ``messaging.message.body.size``, dead
                            ``zenoti.handler``, ``zenoti.tenant``, ``zenoti.event_type``, letter
                            ``zenoti.attempt``, ``zenoti.fate`` (the ``messages_total``
                            outcome: ok, retry, deferred, dead_letter, duplicate),
                            ``zenoti.reason`` (the fate's slug)
==========================  =========================================================  =======

The ingress span continues the sender's ``traceparent`` only for a delivery whose signature
was verified (``verified``): anyone can reach the ingress, and a ``traceparent`` is theirs to
choose (its sampled flag, the trace it grafts onto). It is therefore started once that is
known, with its start time set back to the request's arrival (its duration is still the
whole request's); a request refused before (unknown tenant, too large, a bad signature...),
the test trigger, and a delivery to a tenant that accepts unsigned ones are each a new trace,
a root span with no parent and no link. The worker's span is a child of the context in the
message's headers (the ingress span), linked to the first attempt's span on a retry
(``processor.tracing.carrier``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)

from processor.fate import Fate
from processor.message import MessageMeta
from processor.tracing.carrier import extract, first_attempt_links

_SHORT = 64  # characters of a tenant name as an attribute (configured names are at most 64)
_TYPE = 128  # characters of an event type
_FAILED = frozenset({"retry", "dead_letter"})


class Serving:
    """One delivery's SERVER span, started when its parent is known: the sender's context
    once the signature is verified (``verified``), else a new trace (``span``). Its start time
    is the request's arrival either way."""

    __slots__ = ("_attributes", "_headers", "_name", "_token", "_tracer", "arrived", "started")

    def __init__(self, tracer: Tracer, method: str, route: str,
                 headers: Mapping[str, Any]) -> None:
        self.arrived = time.time_ns()
        self._tracer = tracer
        self._name = f"{method} {route}"
        self._attributes = {"http.request.method": method, "http.route": route}
        self._headers = headers
        self.started: Span | None = None
        self._token: Token[Context] | None = None

    def span(self, parent: Context | None = None) -> Span:
        """The span, started (and made current) on the first call: a child of ``parent``,
        or a root span when there is none."""
        if self.started is None:
            self.started = self._tracer.start_span(
                self._name, context=parent or Context(), kind=SpanKind.SERVER,
                attributes=self._attributes, start_time=self.arrived)
            self._token = otel_context.attach(set_span_in_context(self.started))
        return self.started

    def verified(self, signed: bool) -> None:
        """The delivery passed its tenant's check: a signed one continues the sender's
        ``traceparent`` (if any), an unsigned one (``ALLOW_UNSIGNED``) is a new trace."""
        self.span(extract(self._headers) if signed else None)

    def answered(self, status: int) -> None:
        """Record the HTTP status of the delivery's answer (5xx: the span is an error)."""
        span = self.span()
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def end(self, error: BaseException | None = None) -> None:
        """End the span (started as a new trace if nothing started it), with ``error``."""
        span = self.span()
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        if self._token is not None:
            otel_context.detach(self._token)
        span.end()


_SERVING: ContextVar[Serving | None] = ContextVar("zenoti_events_serving", default=None)


@contextmanager
def serving(tracer: Tracer, method: str, route: str,
            headers: Mapping[str, Any]) -> Iterator[Serving]:
    """One delivery's span (``Serving``), ended when the block ends: started by ``verified``
    with the sender's context, or else as a new trace by whatever first records on it."""
    state = Serving(tracer, method, route, headers)
    reset = _SERVING.set(state)
    error: BaseException | None = None
    try:
        yield state
    except BaseException as exc:
        error = exc
        raise
    finally:
        state.end(error)
        _SERVING.reset(reset)


def verified(signed: bool) -> None:
    """The current delivery passed its tenant's check (``Serving.verified``)."""
    state = _SERVING.get()
    if state is not None:
        state.verified(signed)


def _delivery_span() -> Span:
    state = _SERVING.get()
    return get_current_span() if state is None else state.span()


def delivery_counted(tenant: str, outcome: str) -> None:
    """Record on the current delivery's span how it was counted."""
    _delivery_span().set_attributes({"zenoti.tenant": tenant[:_SHORT],
                                     "zenoti.outcome": outcome})


def delivery_described(event_type: str | None, message_id: str) -> None:
    """Record on the current delivery's span what is being published (the id is at most
    255 bytes, AMQP's bound)."""
    _delivery_span().set_attributes({"zenoti.event_type": (event_type or "")[:_TYPE],
                                     "messaging.message.id": message_id})


@contextmanager
def consuming(tracer: Tracer, queue: str, handler: str, headers: Mapping[str, Any],
              message_id: str | None, size: int, meta: MessageMeta) -> Iterator[Span]:
    """The current span of one message handled from ``queue``: a child of the context its
    ``headers`` carry, linked to the first attempt's span on a retry."""
    attributes: dict[str, str | int] = {
        "messaging.system": "rabbitmq", "messaging.operation.type": "process",
        "messaging.operation.name": "process", "messaging.destination.name": queue,
        "messaging.message.body.size": size, "zenoti.handler": handler,
        "zenoti.tenant": (meta.tenant or "")[:_SHORT],
        "zenoti.event_type": (meta.event_type or "")[:_TYPE], "zenoti.attempt": meta.attempt,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    with tracer.start_as_current_span(
        f"process {queue}", context=extract(headers), kind=SpanKind.CONSUMER,
        links=first_attempt_links(headers), attributes=attributes,
    ) as span:
        yield span


def settled(span: Span, fate_label: str, fate: Fate | None) -> None:
    """Record a message's fate (the ``messages_total`` outcome) and its reason; a retry or a
    dead letter makes the span an error."""
    span.set_attribute("zenoti.fate", fate_label)
    reason = fate.reason if fate is not None else ""
    if reason:
        span.set_attribute("zenoti.reason", reason[:_SHORT])
    if fate_label in _FAILED:
        span.set_status(Status(StatusCode.ERROR, reason[:_SHORT] or fate_label))


def trace_id(span: Span) -> str:
    """``span``'s trace id as the W3C and every back end write it: 32 hex digits."""
    return format(span.get_span_context().trace_id, "032x")

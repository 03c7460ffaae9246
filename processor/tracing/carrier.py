"""Trace context in AMQP headers: W3C ``traceparent`` and ``tracestate``, and the link to a
message's first attempt.

Only the W3C trace context is carried (no baggage): it is what every tracing back end reads,
and its size is bounded. What comes in is checked before the propagator sees it: a
``traceparent`` that is not the 55 characters of W3C's version 00 form, or a ``tracestate``
over 512 characters, reads as absent (a new trace; no state). Anyone can send them to the
ingress, and the propagator logs a warning, quoting the header, for each malformed or
oversized one it meets: checked here, it never sees those, and the library's loggers are held
to errors (``quiet_library_logs``) for a ``tracestate`` whose members are malformed, which it
drops. Header values may come as text or bytes (aio-pika gives either); anything else reads
as absent.

Retries: the retry copy keeps the delivery's ``traceparent``, so every attempt is a child of
the ingress's span (siblings, not a chain as deep as the attempts); the first attempt also
writes its own span context into ``x-zenoti-first-attempt`` (``traceparent`` form), and every
later attempt links to it (``first_attempt_links``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    Link,
    Span,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from processor.message import FIRST_ATTEMPT, TRACEPARENT, TRACESTATE, as_text

# What W3C asks every vendor to propagate at least; the propagator alone allows 32 entries of
# up to 512 characters each, which a sender could fill to 16 KiB on every message.
TRACESTATE_CHARS = 512
_W3C = TraceContextTextMapPropagator()
# W3C's traceparent, version 00, as written (lowercase hex); ``ff`` is no version. Longer forms
# of later versions are not continued: nobody sends them.
_TRACEPARENT_FORM = re.compile(r"(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
TRACEPARENT_CHARS = 55
# The OpenTelemetry loggers that quote what a sender sent (a malformed tracestate member, say),
# at warning level, once per header: held to errors.
LIBRARY_LOGGERS = ("opentelemetry.trace.propagation.tracecontext", "opentelemetry.trace.span")
_FIRST_ATTEMPT_LINK = {"zenoti.link": "first_attempt"}


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP headers (text or bytes values) or HTTP headers (case-insensitive)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = as_text(carrier.get(key))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The context ``headers`` carry (a remote parent), or an empty one: a new trace. Only
    a well-formed ``traceparent`` is read, and a ``tracestate`` of at most
    ``TRACESTATE_CHARS`` with it (``well_formed``)."""
    return _W3C.extract(well_formed(headers or {}), getter=_GETTER)


def well_formed(headers: Mapping[str, Any]) -> dict[str, str]:
    """The trace context of ``headers`` that may be read: ``traceparent`` if it is W3C's
    55-character form, with ``tracestate`` if that is text of at most ``TRACESTATE_CHARS``;
    empty otherwise (the propagator then never sees, nor logs, what a sender made up)."""
    parent = as_text(headers.get(TRACEPARENT))
    if parent is None or not is_traceparent(parent):
        return {}
    state = as_text(headers.get(TRACESTATE))
    if state is None or not is_tracestate(state):
        return {TRACEPARENT: parent}
    return {TRACEPARENT: parent, TRACESTATE: state}


def is_traceparent(value: object) -> bool:
    """Whether ``value`` is a ``traceparent`` as we write it: text in W3C's 55-character form."""
    return (isinstance(value, str) and len(value) == TRACEPARENT_CHARS
            and _TRACEPARENT_FORM.fullmatch(value) is not None)


def is_tracestate(value: object) -> bool:
    """Whether ``value`` is a ``tracestate`` we would carry: text of at most
    ``TRACESTATE_CHARS``."""
    return isinstance(value, str) and len(value) <= TRACESTATE_CHARS


def quiet_library_logs() -> None:
    """Hold OpenTelemetry's loggers that quote headers (``LIBRARY_LOGGERS``) to errors: a
    flood of bad headers is not a flood of lines (the ingress logs its own rejections,
    throttled)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))


def inject(headers: MutableMapping[str, Any], context: Context | None = None) -> None:
    """Write ``context``'s span (default: the current one) into ``headers`` as
    ``traceparent`` (and ``tracestate`` when it has one, up to ``TRACESTATE_CHARS``: a longer
    one, which only a sender can make, is dropped); nothing for an invalid span."""
    _W3C.inject(headers, context)
    state = headers.get(TRACESTATE)
    if isinstance(state, str) and len(state) > TRACESTATE_CHARS:
        del headers[TRACESTATE]


def remember_first(headers: Mapping[str, Any], span: Span | None = None) -> dict[str, Any]:
    """``headers`` with ``x-zenoti-first-attempt`` naming ``span`` (default: the current
    one), unless they name a first attempt already (this is a later attempt)."""
    if FIRST_ATTEMPT in headers:
        return dict(headers)
    own: dict[str, Any] = {}
    _W3C.inject(own, set_span_in_context(span or get_current_span()))
    parent = own.get(TRACEPARENT)
    return {**headers, FIRST_ATTEMPT: parent} if parent else dict(headers)


def first_attempt_links(headers: Mapping[str, Any]) -> list[Link]:
    """A link to the first attempt's span when ``headers`` name one (a retry), else none."""
    named = as_text(headers.get(FIRST_ATTEMPT))
    if named is None:
        return []
    context = get_current_span(extract({TRACEPARENT: named})).get_span_context()
    return [Link(context, _FIRST_ATTEMPT_LINK)] if context.is_valid else []

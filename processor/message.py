"""The message contract: ids and every AMQP header name, for each module that writes or reads a
queued message, and ``MessageMeta``, the one typed reading of them.

Ids: an event's message id is ``<tenant>:<key>``, an output's
``<tenant>:<key>:<handler>:<output>``. AMQP short strings (message id, routing key) hold at most
255 bytes, so longer ones are ``bounded``: a readable head and a SHA-256 of the whole.

Headers, by who writes them:

=========================  ===================  ============================================
header                     written by           holds
=========================  ===================  ============================================
``tenant``                 ingress, worker      the tenant the event belongs to
``event_type``             ingress              Zenoti's event type (1,024 chars at most)
``event_id``, ``delivery_id``  ingress          the idempotency key, the envelope's ``id``
``received_at``            ingress              when the ingress accepted it (ISO 8601, UTC)
``handler``, ``source_event_type``  worker      on enriched output: who made it, from what
``x-zenoti-attempt``       worker (retry)       the attempt this copy is (1 = first)
``x-zenoti-first-failure-at``, ``x-zenoti-history``  worker (retry)  since when, and what failed
``x-zenoti-reason``, ``x-zenoti-error``  worker, ingress  why it was parked (slug, text)
``x-zenoti-handler``, ``x-zenoti-dead-at``  worker  who parked it, and when
``x-zenoti-routing-key``   dlq                  the key it was parked with, kept for replay
``x-zenoti-replayed-at``, ``x-zenoti-replay-count``  dlq  replays of a parked message
``x-zenoti-replay-of``     replay, worker       the id of the archived message a replay copies
                                                (also on its outputs); the worker runs it even
                                                if it handled that id already
``x-zenoti-replayed-by``, ``x-zenoti-replayed-at``  replay  who replayed it (``user@host``), when
``traceparent``, ``tracestate``  ingress, worker  W3C trace context, with tracing on only
                                                (``processor.tracing``): the delivery's span
                                                on events, the publish span on outputs
``x-zenoti-first-attempt``  worker (retry)      the first attempt's span (``traceparent``
                                                form), which later attempts link to
=========================  ===================  ============================================

Readers never trust a header: ``MessageMeta.from_headers`` accepts bytes or text, and a value
of the wrong type reads as absent, never as an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aio_pika.abc import HeadersType

TENANT = "tenant"
EVENT_TYPE = "event_type"
EVENT_ID = "event_id"
DELIVERY_ID = "delivery_id"
RECEIVED_AT = "received_at"
HANDLER = "handler"
SOURCE_EVENT_TYPE = "source_event_type"
ATTEMPT = "x-zenoti-attempt"
FIRST_FAILURE = "x-zenoti-first-failure-at"
HISTORY = "x-zenoti-history"
REASON = "x-zenoti-reason"
ERROR = "x-zenoti-error"
PARKED_BY = "x-zenoti-handler"
DEAD_AT = "x-zenoti-dead-at"
ROUTING_KEY = "x-zenoti-routing-key"
REPLAYED_AT = "x-zenoti-replayed-at"
REPLAY_COUNT = "x-zenoti-replay-count"
REPLAY_OF = "x-zenoti-replay-of"
REPLAYED_BY = "x-zenoti-replayed-by"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
FIRST_ATTEMPT = "x-zenoti-first-attempt"
DEATHS = "x-death"
DELIVERY_COUNT = "x-delivery-count"
# Set by the broker on dead-lettering and redelivery; a copy we publish is a new message and
# carries our own history (``x-zenoti-history``) instead.
BROKER_HEADERS = frozenset({DEATHS, DELIVERY_COUNT, "x-first-death-exchange",
                            "x-first-death-queue", "x-first-death-reason",
                            "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"})

# AMQP short strings (message_id, routing key) hold at most 255 bytes.
SHORTSTR_BYTES = 255
_KEPT_BYTES = 160
# A caller-chosen text in a header: the whole is in the body, and a header past the broker's
# frame size would cost every tenant the connection.
HEADER_CHARS = 1024


class MessageMeta(NamedTuple):
    """What the headers of a queued message say, typed; ``None`` where a header is absent or
    not of its type. Read once per message on the worker's hot path: a named tuple is made in
    a third of a frozen dataclass's time."""

    tenant: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    delivery_id: str | None = None
    received_at: datetime | None = None
    attempt: int = 1
    first_failure_at: datetime | None = None
    reason: str | None = None
    error: str | None = None
    parked_by: str | None = None
    dead_at: datetime | None = None
    replay_of: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any] | None) -> MessageMeta:
        """Read ``headers`` (as aio-pika gives them: bytes or text, ints, datetimes)."""
        get = (headers or {}).get
        return cls(
            as_text(get(TENANT)), as_text(get(EVENT_TYPE)), as_text(get(EVENT_ID)),
            as_text(get(DELIVERY_ID)), moment(get(RECEIVED_AT)), count(get(ATTEMPT)) or 1,
            moment(get(FIRST_FAILURE)), as_text(get(REASON)), as_text(get(ERROR)),
            as_text(get(PARKED_BY)), moment(get(DEAD_AT)), as_text(get(REPLAY_OF)),
        )

    def to_headers(self) -> HeadersType:
        """The headers that say this: absent fields and the first attempt are left out."""
        values: dict[str, object] = {
            TENANT: self.tenant, EVENT_TYPE: self.event_type, EVENT_ID: self.event_id,
            DELIVERY_ID: self.delivery_id, RECEIVED_AT: self.received_at,
            ATTEMPT: self.attempt if self.attempt != 1 else None,
            # An error can quote its input at any length: bounded, as a header that does not
            # fit one AMQP frame makes the broker close the connection.
            FIRST_FAILURE: self.first_failure_at, REASON: self.reason,
            ERROR: header_text(self.error),
            PARKED_BY: self.parked_by, DEAD_AT: self.dead_at, REPLAY_OF: self.replay_of,
        }
        return headers_of(values)


def headers_of(values: Mapping[str, object]) -> HeadersType:
    """AMQP headers from plain values: ``None`` dropped, datetimes in ISO 8601, ints and bools
    as they are, everything else as text."""
    out: HeadersType = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value if isinstance(value, str | int) else str(value)
    return out


def text(headers: Mapping[str, Any], name: str) -> str | None:
    """Header ``name`` as text (bytes decoded, undecodable bytes replaced), else ``None``."""
    return as_text(headers.get(name))


def as_text(value: object) -> str | None:
    """A header value as text (bytes decoded, undecodable bytes replaced); ``None`` when it is
    absent or not text (a number or a table where text belongs is not read as text)."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def count(value: object) -> int | None:
    """A positive int header, else ``None`` (a bool is not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def moment(value: object) -> datetime | None:
    """An aware UTC time from an ISO header or a datetime (naive means UTC), else ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode(errors="replace")
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # not ISO; or an offset past datetime's range
        return None


def header_text(value: str | None) -> str | None:
    """A caller-chosen text as a header value: at most ``HEADER_CHARS`` characters, and
    encodable (a lone UTF-16 surrogate is escaped)."""
    if value is None or (len(value) <= HEADER_CHARS and value.isascii()):
        return value  # the usual case, at no cost
    cut = value if len(value) <= HEADER_CHARS else value[:HEADER_CHARS] + "..."
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def bounded(value: str, limit: int = SHORTSTR_BYTES) -> str:
    """``value`` if it fits ``limit`` UTF-8 bytes, else its readable head and a SHA-256 of the
    whole: ``<first 160 bytes>~<40 hex>``, stable and distinct for distinct values. The original
    travels in headers and body; only AMQP's short-string fields get the bounded form."""
    try:
        raw = value.encode()
    except UnicodeEncodeError:  # a lone surrogate: hashed, never sent as it is
        raw, limit = value.encode("utf-8", "surrogatepass"), 0
    if len(raw) <= limit:
        return value
    head = raw[:_KEPT_BYTES].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:40]}"


def scoped_key(tenant: str, key: str) -> str:
    """The message id of an event of ``tenant``: ``<tenant>:<key>``, bounded. Tenant names
    hold no ``:``, so two tenants' ids never meet however their event ids are chosen."""
    return bounded(f"{tenant}:{key}")


def output_id(tenant: str, key: str, handler: str, output: str) -> str:
    """The message id of a handler's output: ``<tenant>:<key>:<handler>:<output>``, bounded,
    so a consumer of ``zenoti.enriched`` can de-duplicate."""
    return bounded(f"{scoped_key(tenant, key)}:{handler}:{output}")

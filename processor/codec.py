"""Turning delivery bytes into an ``Envelope`` and a message into a typed ``Event``.

The ingress and the worker parse through here, so both name a problem the same way:
``"event_type: Field required"``, ``"body is not valid JSON: ..."``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from processor.errors import InvalidEnvelope, InvalidPayload
from processor.handler import Event
from schemas.envelope import Envelope

_MAX_LISTED = 5
# AMQP short strings (message_id, routing key) hold at most 255 bytes.
SHORTSTR_BYTES = 255
_KEPT_BYTES = 160


def describe(exc: ValidationError) -> str:
    """A short, human message naming each failing field (at most five)."""
    parts = []
    for error in exc.errors()[:_MAX_LISTED]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - _MAX_LISTED
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_envelope(body: bytes) -> Envelope:
    """The envelope of ``body``; ``InvalidEnvelope`` naming the problem otherwise."""
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise InvalidEnvelope(f"body is not valid JSON: {exc.errors()[0]['msg']}") from None
        if any(e["type"] == "model_type" and not e["loc"] for e in exc.errors()):
            raise InvalidEnvelope("body must be a JSON object (the Zenoti envelope)") from None
        raise InvalidEnvelope(f"invalid envelope: {describe(exc)}") from None


def event_key(envelope: Envelope | None, body: bytes) -> str:
    """The idempotency key: ``event_id``, else ``id``, else a hash of the body."""
    return (envelope.key if envelope else None) or (
        "sha256:" + hashlib.sha256(body).hexdigest()[:32])


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


def decode_event(
    body: bytes, schema: type[BaseModel], headers: Mapping[str, Any], tenant: str
) -> Event[Any]:
    """The typed event of a queued message; ``InvalidPayload`` naming the problem otherwise."""
    try:
        envelope = parse_envelope(body)
        data = schema.model_validate(envelope.data)
    except InvalidEnvelope as exc:
        raise InvalidPayload(exc.message) from None
    except ValidationError as exc:
        raise InvalidPayload(f"data does not match {schema.__name__}: {describe(exc)}") from None
    return Event(
        key=event_key(envelope, body),
        event_type=envelope.event_type,
        tenant=tenant,
        data=data,
        event_timestamp=envelope.event_timestamp,
        delivery_id=envelope.id,
        received_at=_received_at(headers),
        attempt=int(headers.get("x-zenoti-attempt", 1)),
        source=envelope,
    )


def _received_at(headers: Mapping[str, Any]) -> datetime | None:
    value = headers.get("received_at")
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None

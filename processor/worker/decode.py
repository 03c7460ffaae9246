"""A queued message as the typed ``Event`` its handler is given."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from processor.errors import InvalidEnvelope, InvalidPayload, describe
from processor.handler import Event
from processor.ingress.envelope import event_key, parse_envelope


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

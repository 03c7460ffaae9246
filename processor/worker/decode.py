"""A queued message as the typed ``Event`` its handler is given."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from processor.errors import InvalidEnvelope, InvalidPayload, describe
from processor.handler import Event
from processor.ingress.envelope import event_key, parse_envelope
from processor.message import MessageMeta


def decode_event(
    body: bytes, schema: type[BaseModel], meta: MessageMeta, tenant: str
) -> Event[Any]:
    """The typed event of a queued message of ``tenant`` whose headers say ``meta``;
    ``InvalidPayload`` naming the problem otherwise."""
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
        received_at=meta.received_at,
        attempt=meta.attempt,
        source=envelope,
    )

"""Turning delivery bytes into an ``Envelope``, naming the problem when they are not one.

The ingress, the worker and triage parse through here, so all name a problem the same way:
``"event_type: Field required"``, ``"body is not valid JSON: ..."``.
"""

from __future__ import annotations

import hashlib

from pydantic import ValidationError

from processor.errors import InvalidEnvelope, describe
from schemas.envelope import Envelope


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

"""The envelope Zenoti wraps every webhook delivery in (REFERENCE 2.1).

``data`` stays a plain dict here: each handler validates it with its own schema, so an
envelope with a ``data`` no handler understands is still accepted and parked, never lost.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# .NET writes 7 fractional digits; Python parses at most 6.
_FRACTION = re.compile(r"(\.\d{6})\d+")
_UNSAFE = re.compile(r"[^a-z0-9._-]")
_MAX_KEY, _KEPT = 255, 160


def parse_zenoti_timestamp(value: str) -> datetime:
    """Parse a Zenoti ISO timestamp, trimming fractions beyond microseconds."""
    value = value.strip()
    try:  # Python 3.11 truncates a long fraction itself; the pattern is 20 times slower
        return datetime.fromisoformat(value)
    except ValueError:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value))


@lru_cache(maxsize=4096)  # a deployment sees a few dozen event types; this runs per delivery
def routing_key(event_type: str) -> str:
    """Normalise an event type into an AMQP routing key: ``Guest.Membership.Freeze`` ->
    ``guest.membership.freeze``. Characters other than letters, digits, ``.``, ``_``, ``-``
    become ``_`` so that a topic binding can never be confused by ``*`` or ``#``; a key over
    255 bytes is cut and given a hash of the whole (the type itself travels in headers)."""
    cleaned = _UNSAFE.sub("_", event_type.strip().lower())
    key = ".".join(part for part in cleaned.split(".") if part) or "unknown"
    if len(key) > _MAX_KEY:  # AMQP's limit is 255 bytes; no Zenoti type comes near it
        key = f"{key[:_KEPT]}.{hashlib.sha256(key.encode()).hexdigest()[:40]}"
    return key


class Envelope(BaseModel):
    """What Zenoti sends. Only ``event_type`` and ``data`` are required (samples omit the rest)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    event_id: str | None = None
    event_schema: str | None = None
    event_resource: str | None = None
    event_type: str = Field(min_length=1)
    event_timestamp: datetime | None = None
    data: dict[str, Any]

    @field_validator("event_timestamp", mode="before")
    @classmethod
    def _trim_fraction(cls, value: object) -> object:
        return parse_zenoti_timestamp(value) if isinstance(value, str) else value

    @field_validator("id", "event_id", mode="before")
    @classmethod
    def _ids_are_strings(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @property
    def key(self) -> str | None:
        """The idempotency key: ``event_id``, else ``id`` (REFERENCE 2.1)."""
        return self.event_id or self.id

    @property
    def routing_key(self) -> str:
        return routing_key(self.event_type)

"""Which event types wait in a parking lot, and which installed handler would take each.

Several Zenoti event-type strings are undocumented (ours are guesses, configurable through
``HANDLER_EVENT_TYPES``), so the first thing a new deployment meets is real types landing in
``zenoti.unrouted``. ``survey`` groups a lot's messages by type and tries each type's sample
against every installed handler's schema: a handler whose schema accepts the sample is a
candidate, and ``setting`` is the exact ``HANDLER_EVENT_TYPES`` value that routes the type to
it (the handler's current types kept, since the setting replaces them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from processor.errors import InvalidEnvelope
from processor.ingress.envelope import parse_envelope
from processor.ops.parking import ParkedMessage
from processor.worker.plugins import LoadedHandler


@dataclass(slots=True)
class TypeSurvey:
    """One event type in a lot: how many, first and last seen, who would take it."""

    event_type: str
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    candidates: list[str] = field(default_factory=list)
    setting: str | None = None  # HANDLER_EVENT_TYPES routing it to the first candidate

    def add(self, message: ParkedMessage) -> None:
        self.count += 1
        moment = message.received_at or message.dead_at
        if moment is not None:
            self.first_seen = min(self.first_seen or moment, moment)
            self.last_seen = max(self.last_seen or moment, moment)


def survey(
    messages: Sequence[ParkedMessage], handlers: Sequence[LoadedHandler],
    overrides: Mapping[str, Sequence[str]],
) -> list[TypeSurvey]:
    """The lot's event types, most frequent first, each with its candidate handlers."""
    found: dict[str, TypeSurvey] = {}
    samples: dict[str, bytes] = {}
    for message in messages:
        found.setdefault(message.event_type, TypeSurvey(message.event_type)).add(message)
        samples.setdefault(message.event_type, message.body)
    for event_type, entry in found.items():
        entry.candidates = [h.name for h in handlers if _accepts(h, samples[event_type])]
        if entry.candidates and event_type:
            entry.setting = _setting(entry.candidates[0], event_type, handlers, overrides)
    return sorted(found.values(), key=lambda e: (-e.count, e.event_type))


def _accepts(handler: LoadedHandler, body: bytes) -> bool:
    try:
        handler.cls.schema.model_validate(parse_envelope(body).data)
    except (InvalidEnvelope, ValidationError):
        return False
    return True


def _setting(name: str, event_type: str, handlers: Sequence[LoadedHandler],
             overrides: Mapping[str, Sequence[str]]) -> str:
    current = next(h.cls.event_types for h in handlers if h.name == name)
    types = [*overrides.get(name, current)]
    if event_type not in types:
        types.append(event_type)
    return "ZENOTI_EVENTS_HANDLER_EVENT_TYPES=" + json.dumps({name: types})

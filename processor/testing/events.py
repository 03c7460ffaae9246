"""What the worker makes of a handler, for tests: the checks it passes at start-up, the
``Event`` of a webhook body (built as Zenoti sends it), and the fate of what ``handle`` did."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from processor.fate import Fate, decide
from processor.handler import Context, Event, Handler
from processor.message import MessageMeta
from processor.settings import DEFAULT_TENANT
from processor.worker.decode import decode_event
from processor.worker.plugins import check

TENANT = DEFAULT_TENANT  # the tenant of a single-organisation deployment


def plugin_problems(handler: type[Handler], entry_name: str | None = None) -> list[str]:
    """Every way ``handler`` fails the checks the worker makes at start-up (empty when it
    passes), registered under ``entry_name`` (default: its own ``name``). A worker with an
    installed plugin that fails them refuses to start, naming each problem."""
    name = entry_name if entry_name is not None else getattr(handler, "name", "")
    return check(handler, str(name))


def envelope(event_type: str, data: Mapping[str, Any], *, event_id: str | None = None,
             at: datetime | None = None) -> dict[str, Any]:
    """A webhook body as Zenoti wraps ``data`` (REFERENCE 2.1): ``id``, ``event_id`` (fresh
    unless given), ``event_type``, ``event_timestamp`` (``at``, else now) and ``data``."""
    key = event_id or uuid.uuid4().hex[:24]
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "id": f"{key}-delivery", "event_id": key, "event_schema": "v1",
        "event_resource": None, "event_type": event_type,
        "event_timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": dict(data),
    }


def event_of(handler: Handler | type[Handler], body: Mapping[str, Any] | bytes, *,
             tenant: str = TENANT, received_at: datetime | None = None,
             attempt: int = 1) -> Event[Any]:
    """The ``Event`` the worker gives ``handler`` for the webhook ``body`` (Zenoti's envelope,
    as a mapping or the raw bytes), decoded the worker's way: ``data`` validated by the
    handler's ``schema``, ``InvalidPayload`` naming the problem when it does not fit.
    ``received_at`` (default now) is when the ingress accepted it; ``attempt`` counts from 1."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    meta = MessageMeta(tenant=tenant, received_at=received_at or datetime.now(UTC),
                       attempt=attempt)
    return decode_event(raw, handler.schema, meta, tenant)


async def fate_of(handler: Handler, event: Event[Any], ctx: Context) -> Fate:
    """Handle ``event`` as the worker does and return its fate instead of raising: ``ACK``
    when ``handle`` returns, else what ``processor.fate.decide`` makes of the exception
    (``RETRY`` or ``DEAD_LETTER``, with its ``reason``). Not applied here: the worker's
    handler deadline, and its retry tiers (a retried message is parked once they run out)."""
    try:
        await handler.handle(event, ctx)
    except Exception as exc:
        return decide(exc)
    return decide(None)

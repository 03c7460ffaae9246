"""CloudEvents 1.0 attributes of an output, in the AMQP protocol binding's binary content mode.

Every output on ``zenoti.enriched`` is a CloudEvent: its body is the event's ``data`` as is,
its AMQP ``content-type`` (``application/json``) the ``datacontenttype``, and every other
attribute an application property named ``cloudEvents:<attribute>`` (the AMQP binding 1.0.2,
section 3.1.3; on AMQP 0-9-1 these are the message's headers, which RabbitMQ hands to AMQP
1.0 consumers as application properties). Values are the attributes' canonical strings,
which the binding allows beside native AMQP types. ``docs/contract.md`` says why each is
what it is:

===============  ==========================================================================
specversion      ``1.0``
id               the output's message id (``<tenant>:<event key>:<handler>:<routing key>``):
                 the same for every run of the same event, so ``source`` + ``id`` de-duplicate
source           ``urn:zenoti-events:tenant:<tenant>``
type             the output's ``event_name`` (``guest.membership.frozen``), the same in every
                 version; the routing key for a model that declares none
time             when it happened: the webhook's ``event_timestamp``, else when the ingress
                 received it (RFC 3339, UTC); one that UTC cannot hold (``0001-01-01`` with
                 a positive offset) counts as absent
subject          ``guests/<guest id>`` for an output about a guest, else ``events/<event key>``;
                 the id or key bounded (``processor.message.bounded``: a key comes from the
                 body, up to its size) and percent-encoded outside RFC 3986's unreserved and
                 sub-delimiter characters, ``:`` and ``@`` (so no ``/``, ``%``, space, control
                 or non-ASCII character of its own: a URI reference)
dataschema       the ``$id`` of the output's JSON Schema (``json_schemas``), which names its
                 version; absent for a model without ``event_name`` and ``version``
===============  ==========================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from processor.contract.json_schemas import output_schema_id
from processor.handler import Event
from processor.message import bounded

PREFIX = "cloudEvents:"
SPECVERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")
# RFC 3986's sub-delims, ':' and '@' (pchar), beside the unreserved characters quote() keeps.
_SAFE = "!$&'()*+,;=:@"


def headers(event: Event[Any], name: str, model: BaseModel, message_id: str) -> dict[str, str]:
    """The ``cloudEvents:`` application properties of ``model``, published under routing key
    ``name`` with ``message_id`` as the output of ``event``."""
    output = type(model)
    attributes = {
        "specversion": SPECVERSION,
        "id": message_id,
        "source": source_of(event.tenant),
        "type": getattr(output, "event_name", None) or name,
        "time": rfc3339(occurred_at(event)),
        "subject": subject_of(model, event.key),
    }
    if isinstance(getattr(output, "event_name", None), str) and hasattr(output, "version"):
        attributes["dataschema"] = output_schema_id(output)
    return {PREFIX + key: value for key, value in attributes.items()}


def source_of(tenant: str) -> str:
    """The CloudEvents ``source`` of a tenant's outputs: an absolute URI (tenant names are
    letters, digits, ``_`` and ``-``: nothing to escape)."""
    return f"urn:zenoti-events:tenant:{tenant}"


def occurred_at(event: Event[Any]) -> datetime:
    """When the event happened, in UTC: the webhook's timestamp when it names its zone, else
    when the ingress received it, else now (a message from before ``received_at`` was
    written). A moment UTC cannot hold (``0001-01-01T00:00:00+05:00`` is in year 0,
    ``9999-12-31T23:59:59-05:00`` in 10000) is passed over like a missing one: the webhook's
    body says it, and an error here would retry the message until it is parked."""
    for moment in (event.event_timestamp, event.received_at):
        if moment is None or moment.utcoffset() is None:
            continue
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            continue
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 (``2026-03-01T09:30:00Z``, fractions kept)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def subject_of(model: BaseModel, event_key: str) -> str:
    """What the output is about within its source: its guest when it names one (a consumer
    filters one guest's events on it), else the webhook event it came from; the id or key
    bounded and percent-encoded (``segment``)."""
    guest = getattr(model, "guest", None)
    guest_id = getattr(guest, "id", None)
    if isinstance(guest_id, str) and guest_id:
        return f"guests/{segment(guest_id)}"
    return f"events/{segment(event_key)}"


def segment(value: str) -> str:
    """``value`` as one path segment of a URI reference: bounded (at most 255 UTF-8 bytes
    before escaping, a longer one its head and a hash of the whole), then percent-encoded
    outside the unreserved and sub-delimiter characters, ``:`` and ``@`` (a lone surrogate
    never reaches ``quote``: ``bounded`` hashes it)."""
    return quote(bounded(value), safe=_SAFE)

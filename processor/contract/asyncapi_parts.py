"""The pieces of the AsyncAPI document that do not depend on the deployment: the headers of
each kind of message (as AsyncAPI Schema Objects) and the AMQP 0.3.0 bindings of the
exchanges and queues ``processor.broker.topology`` declares."""

from __future__ import annotations

from typing import Any

from processor import message as m
from processor.contract import cloudevents

AMQP_BINDING = "0.3.0"
Json = dict[str, Any]

_TEXT: Json = {"type": "string"}
_TIME: Json = {"type": "string", "format": "date-time"}


def _headers(properties: dict[str, Json], required: list[str]) -> Json:
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": True}


# What the ingress sets on every delivery it publishes (processor.message).
DELIVERY_HEADERS = _headers({
    m.TENANT: {**_TEXT, "description": "the tenant whose webhook URL received it"},
    m.EVENT_TYPE: {**_TEXT, "description": "the envelope's event_type, as Zenoti spelled it"},
    m.EVENT_ID: _TEXT, m.DELIVERY_ID: _TEXT,
    m.RECEIVED_AT: {**_TIME, "description": "when the ingress accepted it (UTC)"},
}, [m.TENANT, m.RECEIVED_AT])

# What a parking lot's copy carries beside the delivery's own headers (processor.message).
PARKED_HEADERS = _headers({
    m.REASON: {**_TEXT, "description": "why it was parked: invalid_payload, "
                                       "resource_not_found, attempts_exhausted, ..."},
    m.ERROR: _TEXT, m.PARKED_BY: _TEXT, m.DEAD_AT: _TIME,
    m.ATTEMPT: {"type": "integer", "minimum": 1},
    m.HISTORY: {"type": "array", "description": "one table per failed attempt"},
}, [m.REASON])


def output_headers(dataschema: str | None) -> Json:
    """The headers of an output: the CloudEvents attributes (AMQP binding, binary mode;
    ``dataschema`` pinned to the output's schema id when it has one) and ours."""
    ce = cloudevents.PREFIX
    properties: dict[str, Json] = {
        f"{ce}specversion": {"const": cloudevents.SPECVERSION},
        f"{ce}id": {**_TEXT, "description": "the message id: <tenant>:<event key>:<handler>:"
                                           "<routing key>, the same for every run"},
        f"{ce}source": {**_TEXT, "format": "uri", "pattern": "^urn:zenoti-events:tenant:"},
        f"{ce}type": {**_TEXT, "description": "the output's event_name"},
        f"{ce}time": {**_TIME, "description": "the webhook's event_timestamp, else receipt"},
        f"{ce}subject": {**_TEXT, "pattern": "^(guests|events)/"},
        f"{ce}dataschema": {**_TEXT, "format": "uri"},
        m.TENANT: _TEXT, m.HANDLER: _TEXT, m.SOURCE_EVENT_TYPE: _TEXT, m.RECEIVED_AT: _TIME,
        m.REPLAY_OF: {**_TEXT, "description": "set on a re-run from the archive"},
    }
    if dataschema is not None:
        properties[f"{ce}dataschema"] = {"const": dataschema}
    required = [f"{ce}{name}" for name in (*cloudevents.REQUIRED, "time", "subject")]
    return _headers(properties, [*required, m.TENANT, m.HANDLER])


def exchange(name: str, kind: str, vhost: str) -> Json:
    """The AMQP channel binding of an exchange (``kind``: topic, fanout, direct)."""
    return {"amqp": {"is": "routingKey", "bindingVersion": AMQP_BINDING,
                     "exchange": {"name": name, "type": kind, "durable": True,
                                  "autoDelete": False, "vhost": vhost}}}


def queue(name: str, vhost: str) -> Json:
    """The AMQP channel binding of a durable queue."""
    return {"amqp": {"is": "queue", "bindingVersion": AMQP_BINDING,
                     "queue": {"name": name, "durable": True, "exclusive": False,
                               "autoDelete": False, "vhost": vhost}}}


def confirmed_send() -> Json:
    """The AMQP operation binding of every publish: persistent and mandatory."""
    return {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING}}


def acked_receive() -> Json:
    """The AMQP operation binding of a consumer that acks once the message is settled."""
    return {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING}}


def message_type(name: str) -> Json:
    """The AMQP message binding naming a message's type."""
    return {"amqp": {"messageType": name, "bindingVersion": AMQP_BINDING}}


def rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    """``node`` with every ``$ref`` that ``renamed`` names pointed at its new place."""
    if isinstance(node, dict):
        return {key: renamed.get(value, value) if key == "$ref" and isinstance(value, str)
                else rewrite_refs(value, renamed) for key, value in node.items()}
    if isinstance(node, list):
        return [rewrite_refs(item, renamed) for item in node]
    return node

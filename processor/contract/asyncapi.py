"""An AsyncAPI 3.0.0 document of the deployment as installed (``zenoti-events asyncapi``).

It describes zenoti-events as one application: it receives Zenoti's webhooks over HTTP,
sends each to ``zenoti.ingress``, receives each handler's queue and sends the handler's
outputs to ``zenoti.enriched``, its parking lots beside. The settings give what differs by
deployment: the handlers' event types (``HANDLER_EVENT_TYPES``), the tenants, the ingress's
port, the brokers (scheme, host, port and vhost only: never credentials). Payloads are the
JSON Schemas of ``json_schemas``, their ``$defs`` moved under ``components/schemas`` (an
AsyncAPI Schema Object resolves ``$ref`` against the document); each message names its
schema's ``$id`` in ``x-schema-id``. Validated against the official AsyncAPI 3.0.0 JSON
Schema in tests/contract/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from processor.broker import connect, topology
from processor.broker.stream import ARCHIVE
from processor.contract import asyncapi_parts as parts
from processor.contract import json_schemas
from processor.handler import Handler, outputs_of
from processor.settings import Settings
from schemas.enriched import routing_key_of
from schemas.envelope import Envelope, routing_key

Json = dict[str, Any]
WEBHOOK_PATH = "/webhooks/zenoti/{tenant}"


class Document:
    """An AsyncAPI document being built: components, channels and operations by key."""

    def __init__(self, settings: Settings, version: str) -> None:
        urls = connect.parse(settings.amqp_url.get_secret_value())
        self.vhost = unquote(urlsplit(urls[0]).path[1:]) or "/"
        self.brokers = _broker_servers(urls)
        self.body: Json = {
            "asyncapi": "3.0.0",
            "info": {"title": "zenoti-events", "version": version,
                     "description": "Zenoti webhooks, durably queued on RabbitMQ, enriched from "
                                    "the Zenoti API by handler plugins (docs/contract.md)."},
            "defaultContentType": "application/json",
            "servers": {"ingress": _ingress_server(settings.ingress_port), **self.brokers},
            "channels": {}, "operations": {}, "components": {"schemas": {}, "messages": {}},
        }

    def schema(self, key: str, schema: Json) -> Json:
        """Add a JSON Schema under ``key`` (its ``$defs`` beside it); a reference to it."""
        defs: Json = schema.get("$defs", {})
        renamed = {f"#/$defs/{name}": f"#/components/schemas/{key}.{name}" for name in defs}
        found = self.body["components"]["schemas"]
        for name, definition in defs.items():
            found[f"{key}.{name}"] = parts.rewrite_refs(definition, renamed)
        kept = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "$defs")}
        found[key] = parts.rewrite_refs(kept, renamed)
        return {"$ref": f"#/components/schemas/{key}"}

    def message(self, key: str, message: Json) -> Json:
        self.body["components"]["messages"][key] = message
        return {"$ref": f"#/components/messages/{key}"}

    def channel(self, key: str, address: str, messages: dict[str, Json], **more: Any) -> None:
        """A channel on the brokers (unless ``more`` names its ``servers``)."""
        more.setdefault("servers", [{"$ref": f"#/servers/{name}"} for name in self.brokers])
        self.body["channels"][key] = {"address": address, "messages": messages, **more}

    def operation(self, key: str, action: str, channel: str, **more: Any) -> None:
        """``action`` (send, receive) on ``channel``, with every message the channel has."""
        names = self.body["channels"][channel]["messages"]
        self.body["operations"][key] = {
            "action": action, "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names], **more}


def document(settings: Settings, handlers: Sequence[type[Handler]], version: str) -> Json:
    """The AsyncAPI 3.0.0 document of ``handlers`` deployed with ``settings``."""
    doc = Document(settings, version)
    _ingress_side(doc, sorted(settings.all_tenants()))
    outputs: dict[str, Json] = {}
    for handler in handlers:
        types = settings.handler_event_types.get(handler.name) or list(handler.event_types)
        _handler_side(doc, handler, types)
        outputs.update(_outputs(doc, handler))
    doc.channel("unclaimed", topology.UNCLAIMED, outputs, bindings=parts.queue(
        topology.UNCLAIMED, doc.vhost), description="Outputs no queue of yours was bound for "
        "when they were published (zenoti.enriched's alternate exchange): kept, never dropped.")
    return doc.body


def _broker_servers(urls: Sequence[str]) -> Json:
    servers = {}
    for index, url in enumerate(urls, start=1):
        parts_ = urlsplit(connect.shown(url))
        key = "rabbitmq" if len(urls) == 1 else f"rabbitmq-{index}"
        servers[key] = {"host": parts_.netloc, "pathname": parts_.path or "/",
                        "protocol": parts_.scheme, "protocolVersion": "0-9-1",
                        "description": "RabbitMQ (AMQP_URL; credentials never shown)"}
    return servers


def _ingress_server(port: int) -> Json:
    return {"host": f"{{host}}:{port}", "protocol": "http",
            "description": "the ingress (INGRESS_PORT); host is where Zenoti reaches it",
            "variables": {"host": {"default": "localhost"}}}


def _ingress_side(doc: Document, tenants: list[str]) -> None:
    """The webhook, the exchanges every delivery passes, the archive and zenoti.unrouted."""
    envelope = doc.schema("envelope", {"title": "Zenoti webhook envelope",
                                       **Envelope.model_json_schema()})
    _webhook(doc, envelope, tenants)
    delivery = doc.message("delivery", {
        "name": "delivery", "title": "A delivery the ingress accepted, its raw body unchanged",
        "payload": envelope, "headers": parts.DELIVERY_HEADERS,
        "description": "Routing key: the event type normalised (Guest.Membership.Freeze -> "
                       "guest.membership.freeze); message id: the tenant-scoped event key."})
    for key, name, kind in (("ingress", topology.INGRESS, "fanout"),
                            ("events", topology.EVENTS, "topic")):
        doc.channel(key, name, {"delivery": delivery}, bindings=parts.exchange(
            name, kind, doc.vhost))
    doc.operation("sendDelivery", "send", "ingress", bindings=parts.confirmed_send())
    doc.channel("archive", ARCHIVE, {"delivery": delivery}, bindings=parts.queue(
        ARCHIVE, doc.vhost), description="A stream of every accepted delivery "
        "(zenoti-events replay).")
    parked = doc.message("unrouted", {"name": "unrouted", "title": "A delivery no handler "
                                      "takes, or a signed body that is not an envelope",
                                      "payload": {}, "headers": parts.DELIVERY_HEADERS})
    doc.channel("unrouted", topology.UNROUTED, {"unrouted": parked}, bindings=parts.queue(
        topology.UNROUTED, doc.vhost))


def _webhook(doc: Document, envelope: Json, tenants: list[str]) -> None:
    """The ingress's HTTP operation: Zenoti's signed POST of an envelope."""
    signed = {"type": "object", "properties": {"zenoti-webhook-signature": {
        "type": "string", "description": "HMAC-SHA256 of the raw body with the tenant's secret"}}}
    webhook = doc.message("webhook", {
        "name": "webhook", "title": "A Zenoti webhook delivery", "payload": envelope,
        "bindings": {"http": {"headers": signed, "bindingVersion": "0.3.0"}}})
    doc.channel("webhook", WEBHOOK_PATH, {"webhook": webhook},
                servers=[{"$ref": "#/servers/ingress"}],
                parameters={"tenant": {"enum": tenants, "description": (
                    "the tenant; the default one is also served on /webhooks/zenoti")}})
    doc.operation("receiveWebhook", "receive", "webhook", bindings={
        "http": {"method": "POST", "bindingVersion": "0.3.0"}}, description=(
        "Answered 202 once the broker confirmed the delivery (or the spool holds it); PUT and "
        "PATCH are taken the same way. An empty body is Zenoti's test trigger: 200."))


def _handler_side(doc: Document, handler: type[Handler], event_types: Sequence[str]) -> None:
    """The handler's queue and its input message, its parking lot."""
    name = handler.name
    schema = json_schemas.input_schema(handler)
    payload = doc.schema(f"input.{name}", schema)
    keys = sorted({routing_key(t) for t in event_types})
    message = doc.message(f"input.{name}", {
        "name": f"input.{name}", "title": f"What {name} receives", "payload": payload,
        "headers": parts.DELIVERY_HEADERS, "x-schema-id": schema["$id"],
        "bindings": parts.message_type(", ".join(event_types))})
    queue = topology.queue_name(name)
    doc.channel(f"handler.{name}", queue, {"input": message}, bindings=parts.queue(
        queue, doc.vhost), description=f"Bound to {topology.EVENTS} by {', '.join(keys)} "
        f"(event types {', '.join(event_types)}).")
    doc.operation(f"consume.{name}", "receive", f"handler.{name}", bindings=parts.acked_receive())
    lot = topology.dead_queue_name(name)
    dead = doc.message(f"parked.{name}", {
        "name": f"parked.{name}", "title": f"A message {name} parked", "payload": payload,
        "headers": {"allOf": [parts.DELIVERY_HEADERS, parts.PARKED_HEADERS]}})
    doc.channel(f"dead.{name}", lot, {"parked": dead}, bindings=parts.queue(lot, doc.vhost),
                description="The parking lot (zenoti-events dlq), through zenoti.dead.")
    doc.operation(f"park.{name}", "send", f"dead.{name}", bindings=parts.confirmed_send())


def _outputs(doc: Document, handler: type[Handler]) -> dict[str, Json]:
    """A channel and a send operation per output ``handler`` declares; its messages by key."""
    messages = {}
    for output in outputs_of(handler):
        key = routing_key_of(output)
        message = doc.message(f"output.{key}", _output_message(doc, output, key))
        doc.channel(f"output.{key}", key, {"output": message},
                    bindings=parts.exchange(topology.ENRICHED, "topic", doc.vhost))
        doc.operation(f"publish.{key}", "send", f"output.{key}",
                      bindings=parts.confirmed_send(), description=f"by {handler.name}")
        messages[key] = message
    return messages


def _output_message(doc: Document, output: type[BaseModel], key: str) -> Json:
    schema = json_schemas.output_schema(output)
    return {"name": key, "title": schema["title"], "contentType": "application/json",
            "payload": doc.schema(f"output.{key}", schema),
            "headers": parts.output_headers(schema["$id"]), "x-schema-id": schema["$id"],
            "bindings": parts.message_type(getattr(output, "event_name"))}  # noqa: B009

"""The AsyncAPI document of a deployment: valid against the official AsyncAPI 3.0.0 JSON Schema
(vendored in tests/contract/), every reference resolving, its payloads the outputs' schemas,
and the deployment's settings in it, never its credentials."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from pydantic import SecretStr
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from handlers.guestpass_redeemed import GuestpassRedeemed
from handlers.membership_freeze import MembershipFreeze
from handlers.package_status import PackageStatus
from processor.contract import asyncapi
from processor.handler import Handler
from processor.settings import Settings

OFFICIAL = Path(__file__).parents[1] / "contract" / "asyncapi-3.0.0-without-id.json"
HANDLERS: list[type[Handler]] = [MembershipFreeze, GuestpassRedeemed, PackageStatus]
AMQP_URL = "amqp://app:s3cret-pw@rabbit.example:5671/zenoti"


@pytest.fixture(scope="module")
def official() -> Draft7Validator:
    schema = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def document(**settings: Any) -> dict[str, Any]:
    values = {"amqp_url": SecretStr(AMQP_URL), **settings}
    return asyncapi.document(Settings(**values), HANDLERS, "9.9.9")


def errors(validator: Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_the_document_is_valid_asyncapi_3_0_0(official: Draft7Validator) -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert errors(official, doc) == []


@pytest.mark.parametrize("breakage", [
    lambda d: d["operations"]["consume.membership-freeze"].pop("action"),
    lambda d: d["channels"]["events"]["bindings"]["amqp"]["exchange"].update(type="bogus"),
    lambda d: d.update(asyncapi="2.6.0"),
    lambda d: d["servers"]["rabbitmq"].pop("protocol"),
])
def test_a_broken_document_is_refused(official: Draft7Validator, breakage: Any) -> None:
    doc = document()
    broken = copy.deepcopy(doc)
    breakage(broken)
    assert errors(official, broken) != []


def test_every_reference_resolves_inside_the_document() -> None:
    doc = document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT7))
    resolver = registry.resolver(base_uri="urn:doc")
    found = set(refs(doc))
    assert found
    for ref in found:
        assert ref.startswith("#/"), ref
        resolver.lookup(f"urn:doc{ref}")  # raises when it points at nothing


def test_an_output_messages_payload_validates_what_the_handler_publishes() -> None:
    doc = document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT7))
    message = doc["components"]["messages"]["output.guest.membership.frozen"]
    payload = {"$ref": "urn:doc" + message["payload"]["$ref"]}
    validator = Draft202012Validator(payload, registry=registry)
    body = {"tenant": "t", "event_id": "e", "event_type": "x", "handler": "h",
            "guest": {"id": "g"}, "membership": {"user_membership_id": "m"}}
    assert validator.is_valid({**body, "schema_version": 1})
    assert not validator.is_valid({**body, "schema_version": 2})
    assert message["x-schema-id"] == "urn:zenoti-events:schema:guest.membership.frozen:v1"
    headers = message["headers"]["properties"]
    assert headers["cloudEvents:dataschema"] == {"const": message["x-schema-id"]}


def test_it_names_every_exchange_queue_and_parking_lot() -> None:
    doc = document()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"/webhooks/zenoti/{tenant}", "zenoti.ingress", "zenoti.events", "zenoti.unrouted",
            "zenoti.archive", "zenoti.enriched.unclaimed"} <= addresses
    for handler in HANDLERS:
        assert {f"zenoti.h.{handler.name}", f"zenoti.h.{handler.name}.dead"} <= addresses
    assert doc["operations"]["receiveWebhook"]["bindings"]["http"]["method"] == "POST"
    published = doc["channels"]["output.guest.package.status_changed"]
    assert published["bindings"]["amqp"]["exchange"]["name"] == "zenoti.enriched"
    assert published["bindings"]["amqp"]["exchange"]["type"] == "topic"


def test_the_brokers_are_shown_without_credentials() -> None:
    doc = document()
    text = json.dumps(doc)
    assert "s3cret-pw" not in text and "app:" not in text
    assert doc["servers"]["rabbitmq"] == {
        "host": "rabbit.example:5671", "pathname": "/zenoti", "protocol": "amqp",
        "protocolVersion": "0-9-1", "description": doc["servers"]["rabbitmq"]["description"]}
    assert doc["channels"]["events"]["bindings"]["amqp"]["exchange"]["vhost"] == "zenoti"


def test_several_broker_addresses_are_several_servers() -> None:
    doc = document(amqp_url=SecretStr("amqp://a:b@n1:5672/,amqp://a:b@n2:5672/"))
    assert doc["servers"]["rabbitmq-1"]["host"] == "n1:5672"
    assert doc["servers"]["rabbitmq-2"]["host"] == "n2:5672"
    assert doc["channels"]["events"]["bindings"]["amqp"]["exchange"]["vhost"] == "/"


def test_the_settings_event_types_tenants_and_port_are_the_deployments() -> None:
    doc = document(ingress_port=9443, handler_event_types={
        "membership-freeze": ["Guest.Membership.Freeze", "Guest.Membership.Pause"]},
        tenants={"acme": {"webhook_secrets": ["a-long-secret"], "api_key": "k"}})
    assert doc["servers"]["ingress"]["host"] == "{host}:9443"
    queue = doc["channels"]["handler.membership-freeze"]
    assert "guest.membership.freeze, guest.membership.pause" in queue["description"]
    assert "acme" in doc["channels"]["webhook"]["parameters"]["tenant"]["enum"]
    assert "a-long-secret" not in json.dumps(doc)

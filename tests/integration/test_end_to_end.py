"""The whole path on real services: signed deliveries -> ingress -> RabbitMQ -> worker ->
Zenoti sandbox over HTTP -> enriched events on ``zenoti.enriched``; plus the parking lots."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from processor.broker import topology
from processor.broker.topology import Binding
from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.sandbox.organisation import Organisation
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, collect, drain, listener, reset
from tests.integration.processes import SECRET, Stack, stack

pytestmark = pytest.mark.integration

ALL = [*TEST_BINDINGS, Binding("example-echo", ("Example.Echo",))]
OUTPUTS = {
    "Guest.Membership.Freeze": "guest.membership.frozen",
    "Guestpass.redeemed": "guest.guestpass.redeemed",
    "Guest.Package.StatusUpdate": "guest.package.status_changed",
}


@pytest.fixture
async def running(broker: Broker) -> AsyncIterator[Stack]:
    await reset(broker.url, ALL)
    with stack(broker.url) as s:
        s.sandbox()
        s.ingress()
        s.worker()
        yield s


def one_of_each_kind(seed: int = 7) -> list[Delivery]:
    org = Organisation.generate(1)
    picked: dict[str, Delivery] = {}
    for delivery in build_deliveries(org, 200, seed=seed, unknown_ratio=0.0):
        picked.setdefault(delivery.event_type, delivery)
    assert set(picked) == set(OUTPUTS)
    return list(picked.values())


def post(stack: Stack, body: bytes, signed: bool = True) -> httpx.Response:
    headers = Delivery(body, "", "").headers(SECRET if signed else None)
    return httpx.post(stack.webhook_url, content=body, headers=headers, timeout=10)


def envelope(event_type: str, data: Mapping[str, object], event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "event_type": event_type,
                       "event_timestamp": "2026-11-21T10:00:00.1234567Z", "data": data}).encode()


async def test_a_signed_delivery_of_each_kind_comes_out_enriched(running: Stack) -> None:
    deliveries = one_of_each_kind()
    async with listener(running.amqp_url, topology.ENRICHED) as received:
        for delivery in deliveries:
            assert post(running, delivery.body).status_code == 202
        out = await collect(received, len(deliveries))
    by_key = {m.routing_key: m for m in out}
    assert set(by_key) == set(OUTPUTS.values())
    for delivery in deliveries:
        message = by_key[OUTPUTS[delivery.event_type]]
        body = json.loads(message.body)
        assert body["event_id"] == delivery.event_id
        assert body["tenant"] == "default"
        assert body["guest"]["id"] and body["guest"]["first_name"]
        assert (message.message_id or "").startswith(f"default:{delivery.event_id}:")


async def test_an_outside_plugin_is_found_and_run(running: Stack) -> None:
    async with listener(running.amqp_url, topology.ENRICHED, "example.echoed") as received:
        body = envelope("Example.Echo", {"text": "hello"}, "echo-1")
        assert post(running, body).status_code == 202
        [message] = await collect(received, 1)
    assert json.loads(message.body) == {"event_id": "echo-1", "tenant": "default", "text": "hello",
                                        "schema_version": 1}


async def test_an_unknown_event_type_is_parked_in_unrouted(running: Stack) -> None:
    body = envelope("Appointment.Started", {"invoice_id": "i-1"}, "unknown-1")
    assert post(running, body).status_code == 202
    [parked] = await drain(running.amqp_url, topology.UNROUTED, 1)
    assert parked.body == body
    assert parked.headers["event_type"] == "Appointment.Started"


async def test_a_poison_payload_is_dead_lettered_with_its_reason(running: Stack) -> None:
    body = envelope("Guest.Membership.Freeze", {"status": 1}, "poison-1")
    assert post(running, body).status_code == 202
    [dead] = await drain(running.amqp_url, "zenoti.h.membership-freeze.dead", 1)
    assert dead.body == body
    assert dead.headers["x-zenoti-reason"] == "invalid_payload"
    assert "user_membership_id" in str(dead.headers["x-zenoti-error"])
    assert dead.headers["x-zenoti-handler"] == "membership-freeze"


async def test_a_resource_zenoti_does_not_know_is_dead_lettered(running: Stack) -> None:
    data = {"user_membership_id": "00000000-0000-4000-8000-000000000001",
            "group_user_membership_id": "00000000-0000-4000-8000-000000000002",
            "center": {"id": "00000000-0000-4000-8000-000000000003", "name": "Nowhere"}}
    body = envelope("Guest.Membership.Freeze", data, "missing-1")
    assert post(running, body).status_code == 202
    [dead] = await drain(running.amqp_url, "zenoti.h.membership-freeze.dead", 1)
    assert dead.headers["x-zenoti-reason"] == "resource_not_found"


async def test_sigterm_stops_every_process_cleanly(running: Stack) -> None:
    assert running.stop() == [0, 0, 0]

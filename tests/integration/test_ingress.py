"""The ingress against the real broker: 202 only after a confirm, clear errors otherwise."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor import wiring
from processor.broker import topology
from processor.broker.publisher import ConfirmedPublisher
from processor.ingress.signature import sign
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import BROKER_HEADER_ALLOWANCE, Settings, TenantSettings
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, depth, drain, reset

pytestmark = pytest.mark.integration

SECRET = "ingress-test-secret"
FREEZE = {
    "id": "622b5b33a961750e01db6512", "event_id": "622b5b33a961750e01db6510",
    "event_type": "Guest.Membership.Freeze", "event_timestamp": "2022-03-11T14:22:43.3847049Z",
    "data": {"user_membership_id": "u1"},
}
QUEUE = "zenoti.h.membership-freeze"
Client = TestClient[web.Request, web.Application]


def settings_for(url: str, **extra: Any) -> Settings:
    options: dict[str, Any] = {
        "tenants": {"acme": TenantSettings(webhook_secrets=[SecretStr("acme-secret")])},
        "confirm_timeout": 2.0, "max_body_bytes": 4096, "reconnect_max_delay": 0.5,
        "redis_url": None,  # accepted deliveries remembered in memory, for this test alone
        **extra,
    }
    return Settings(amqp_url=SecretStr(url), webhook_secrets=[SecretStr(SECRET)], **options)


async def client_for(settings: Settings,
                     broker_max: int | None = None) -> AsyncIterator[Client]:
    """A test client of the ingress ``build_ingress`` makes. ``broker_max``: its publisher
    believes the broker takes messages of that size at most (a size settings refuse)."""
    metrics = Metrics()
    publisher = None if broker_max is None else small_publisher(settings, broker_max, metrics)
    built = wiring.build_ingress(settings, bindings=TEST_BINDINGS, metrics=metrics,
                                 log=get_logger(test="ingress"), publisher=publisher)
    await built.publisher.start(wait=5)
    client = TestClient(TestServer(built.ingress.app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await built.aclose()


def small_publisher(settings: Settings, broker_max: int, metrics: Metrics) -> ConfirmedPublisher:
    return ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=get_logger(test="ingress"), metrics=metrics,
        on_connect=lambda ch: wiring.declare(ch, settings, TEST_BINDINGS), max_delay=0.5,
        max_message_size=broker_max,
    )


@pytest.fixture
async def client(broker: Broker) -> AsyncIterator[Client]:
    await reset(broker.url, TEST_BINDINGS)
    async for c in client_for(settings_for(broker.url)):
        yield c


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"zenoti-webhook-signature": sign(secret, body), "Content-Type": "application/json"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_a_signed_delivery_is_confirmed_then_answered_202(
    client: Client, broker: Broker, method: str
) -> None:
    body = json.dumps(FREEZE).encode()
    response = await client.request(method, "/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 202
    assert (await response.json())["event_id"] == FREEZE["event_id"]
    [message] = await drain(broker.url, QUEUE, 1)
    assert message.body == body
    assert message.message_id == f"default:{FREEZE['event_id']}"
    assert message.headers["event_id"] == FREEZE["event_id"]
    assert message.routing_key == "guest.membership.freeze"
    assert message.delivery_mode == 2
    assert message.headers["tenant"] == "default"
    assert message.headers["event_type"] == "Guest.Membership.Freeze"
    assert "received_at" in message.headers


async def test_a_named_tenant_uses_its_own_secret(client: Client, broker: Broker) -> None:
    body = json.dumps(FREEZE).encode()
    wrong = await client.post("/webhooks/zenoti/acme", data=body, headers=signed(body))
    assert wrong.status == 401
    right = await client.post("/webhooks/zenoti/acme", data=body,
                              headers=signed(body, "acme-secret"))
    assert right.status == 202
    [message] = await drain(broker.url, QUEUE, 1)
    assert message.headers["tenant"] == "acme"


async def test_an_empty_body_is_the_test_trigger_answered_200_and_not_published(
    client: Client, broker: Broker
) -> None:
    response = await client.post("/webhooks/zenoti")
    assert response.status == 200
    assert await depth(broker.url, QUEUE) == 0
    assert await depth(broker.url, topology.UNROUTED) == 0


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "invalid_signature"),
        ({"zenoti-webhook-signature": "sha256=" + "0" * 64}, 401, "invalid_signature"),
        ({"zenoti-webhook-signature": "garbage"}, 401, "invalid_signature"),
    ],
)
async def test_a_missing_or_wrong_signature_is_401_and_not_published(
    client: Client, broker: Broker, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/webhooks/zenoti", data=json.dumps(FREEZE), headers=headers)
    assert response.status == status
    assert (await response.json())["error"] == code
    assert SECRET not in await response.text()
    assert await depth(broker.url, QUEUE) == 0


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{nope", "not valid JSON"),
        (b'{"data": {}}', "event_type"),
        (b'{"event_type": "Guest.Membership.Freeze"}', "data"),
        (b"[]", "JSON object"),
    ],
)
async def test_a_signed_body_that_is_not_the_envelope_is_accepted_and_parked_with_why(
    client: Client, broker: Broker, body: bytes, names: str
) -> None:
    # Zenoti counts a 4xx for a signed delivery towards switching the webhook off.
    response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 202
    assert (await response.json())["status"] == "parked"
    [parked] = await drain(broker.url, topology.UNROUTED, 1)
    assert parked.body == body
    assert parked.headers["x-zenoti-reason"] == "invalid_envelope"
    assert names in str(parked.headers["x-zenoti-error"])
    assert parked.headers["tenant"] == "default"
    again = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert (again.status, (await again.json())["status"]) == (200, "duplicate")


async def test_signed_data_that_is_an_array_is_parked_under_its_event_id(
    client: Client, broker: Broker
) -> None:
    body = json.dumps({**FREEZE, "data": []}).encode()
    response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 202
    [parked] = await drain(broker.url, topology.UNROUTED, 1)
    assert parked.message_id == f"default:{FREEZE['event_id']}"
    assert parked.headers["event_type"] == "Guest.Membership.Freeze"
    assert "data" in str(parked.headers["x-zenoti-error"])
    assert await depth(broker.url, QUEUE) == 0


@pytest.mark.parametrize(("body", "names"), [(b"{nope", "not valid JSON"),
                                             (b'{"data": []}', "event_type")])
async def test_a_bad_envelope_on_an_unsigned_tenant_is_400_naming_the_problem(
    broker: Broker, body: bytes, names: str
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    open_tenant = {"open": TenantSettings()}
    async for client in client_for(settings_for(broker.url, tenants=open_tenant,
                                                allow_unsigned=True)):
        response = await client.post("/webhooks/zenoti/open", data=body)
        assert response.status == 400
        payload = await response.json()
        assert payload["error"] == "invalid_envelope"
        assert names in payload["message"]
        assert await depth(broker.url, topology.UNROUTED) == 0


async def test_the_same_event_id_on_two_tenants_is_two_events(
    client: Client, broker: Broker
) -> None:
    body = json.dumps(FREEZE).encode()
    first = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    second = await client.post("/webhooks/zenoti/acme", data=body,
                               headers=signed(body, "acme-secret"))
    assert (first.status, second.status) == (202, 202)
    messages = await drain(broker.url, QUEUE, 2)
    assert {m.message_id for m in messages} == {f"default:{FREEZE['event_id']}",
                                                f"acme:{FREEZE['event_id']}"}
    resent = await client.post("/webhooks/zenoti/acme", data=body,
                               headers=signed(body, "acme-secret"))
    assert resent.status == 200


async def test_ids_and_types_of_any_length_are_published_with_bounded_amqp_fields(
    client: Client, broker: Broker
) -> None:
    long_id, long_type = "e" * 300, "Guest." + "Very" * 80
    body = json.dumps({**FREEZE, "event_id": long_id}).encode()
    response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 202
    [message] = await drain(broker.url, QUEUE, 1)
    assert len(str(message.message_id).encode()) <= 255
    assert message.headers["event_id"] == long_id
    resent = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert resent.status == 200  # the bounded id is stable: a resend is a duplicate
    odd = json.dumps({**FREEZE, "event_id": "x1", "event_type": long_type}).encode()
    assert (await client.post("/webhooks/zenoti", data=odd, headers=signed(odd))).status == 202
    [parked] = await drain(broker.url, topology.UNROUTED, 1)
    assert parked.headers["event_type"] == long_type
    assert len(str(parked.routing_key).encode()) <= 255


async def test_a_body_over_the_cap_is_413(client: Client) -> None:
    body = b'{"event_type": "X", "data": {"pad": "' + b"x" * 5000 + b'"}}'
    response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 413
    assert "4096" in (await response.json())["message"]


async def test_an_unknown_tenant_is_404(client: Client) -> None:
    response = await client.post("/webhooks/zenoti/nobody", data=b"{}")
    assert response.status == 404
    assert "nobody" in (await response.json())["message"]


async def test_a_long_tenant_path_is_not_echoed_whole(client: Client) -> None:
    response = await client.post("/webhooks/zenoti/" + "t" * 2000, data=b"{}")
    assert response.status == 404
    assert len((await response.json())["message"]) < 200


async def test_the_default_path_exists_only_when_configured(broker: Broker) -> None:
    named_only = Settings(amqp_url=SecretStr(broker.url), tenants={
        "acme": TenantSettings(webhook_secrets=[SecretStr("acme-secret")],
                               api_key=SecretStr("k"))})
    async for client in client_for(named_only):
        body = json.dumps(FREEZE).encode()
        assert (await client.post("/webhooks/zenoti", data=body)).status == 404


async def test_an_unsigned_acceptance_is_counted(broker: Broker) -> None:
    await reset(broker.url, TEST_BINDINGS)
    open_tenant = {"open": TenantSettings()}
    async for client in client_for(settings_for(broker.url, tenants=open_tenant,
                                                allow_unsigned=True)):
        body = json.dumps(FREEZE).encode()
        assert (await client.post("/webhooks/zenoti/open", data=body)).status == 202
        text = await (await client.get("/metrics")).text()
        assert 'zenoti_events_deliveries_unsigned_total{tenant="open"} 1.0' in text


async def test_an_unknown_event_type_is_accepted_and_parked(
    client: Client, broker: Broker
) -> None:
    body = json.dumps({**FREEZE, "event_type": "Appointment.Started"}).encode()
    response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert response.status == 202
    [parked] = await drain(broker.url, topology.UNROUTED, 1)
    assert parked.headers["event_type"] == "Appointment.Started"


async def test_probes_and_metrics(client: Client) -> None:
    body = json.dumps(FREEZE).encode()
    await client.post("/webhooks/zenoti", data=body, headers=signed(body))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    accepted = 'zenoti_events_deliveries_total{outcome="accepted",status="202",tenant="default"}'
    assert accepted in text
    assert "zenoti_events_confirm_seconds_bucket" in text
    assert "zenoti_events_answer_seconds_count 1.0" in text  # the delivery's answer, timed


async def test_without_a_broker_deliveries_get_503_with_retry_after() -> None:
    async for client in client_for(settings_for("amqp://guest:guest@127.0.0.1:1/")):
        body = json.dumps(FREEZE).encode()
        response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
        assert response.status == 503
        assert response.headers["Retry-After"] == "30"
        assert (await response.json())["error"] == "broker_unavailable"
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200


async def test_an_id_far_past_any_header_limit_costs_no_other_delivery_its_connection(
    broker: Broker,
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    huge = json.dumps({**FREEZE, "event_id": "E" * 300_000}).encode()
    body = json.dumps({**FREEZE, "event_id": "after-the-huge-one"}).encode()
    async for roomy in client_for(settings_for(broker.url, max_body_bytes=1_000_000)):
        sent = await roomy.post("/webhooks/zenoti", data=huge, headers=signed(huge))
        assert sent.status == 202
        after = await roomy.post("/webhooks/zenoti", data=body, headers=signed(body))
        assert after.status == 202
    messages = await drain(broker.url, QUEUE, 2)
    assert all(len(str(m.headers["event_id"])) <= 1030 for m in messages)


@pytest.mark.parametrize("raw", [
    b'{"event_id": "\\ud800x", "event_type": "Guest.Membership.Freeze", "data": {}}',
    b'{"id": "\\ud800", "event_type": 5, "data": {}}',
    b'{"event_id": "s-1", "event_type": "Guest.Membership.Freeze\\udfff", "data": {}}',
])
async def test_a_signed_body_with_lone_surrogates_is_kept_never_a_5xx(
    client: Client, broker: Broker, raw: bytes
) -> None:
    response = await client.post("/webhooks/zenoti", data=raw, headers=signed(raw))
    assert response.status == 202, await response.text()


async def test_a_trailing_slash_reaches_the_tenant(client: Client, broker: Broker) -> None:
    body = json.dumps(FREEZE).encode()
    response = await client.post("/webhooks/zenoti/acme/", data=body,
                                 headers=signed(body, "acme-secret"))
    assert response.status == 202


async def test_a_message_the_broker_would_refuse_is_named_so_never_broker_unavailable(
    broker: Broker,
) -> None:
    # A broker whose limit is below the body (misconfigured against MAX_BODY_BYTES): the
    # answer says what is wrong, and it is not the 503 that would have Zenoti resend forever.
    await reset(broker.url, TEST_BINDINGS)
    body = json.dumps({**FREEZE, "data": {"user_membership_id": "u1", "pad": "x" * 600}}).encode()
    limit = BROKER_HEADER_ALLOWANCE + 500
    async for client in client_for(settings_for(broker.url), broker_max=limit):
        response = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
        assert response.status == 500
        answer = await response.json()
        assert answer["error"] == "publish_refused" and "max_message_size" in answer["message"]
        small = json.dumps(FREEZE).encode()
        assert (await client.post("/webhooks/zenoti", data=small,
                                  headers=signed(small))).status == 202

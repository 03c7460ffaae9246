"""The builders: what a process says and refuses when built, and the seams they take."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, SecretStr
from structlog.testing import capture_logs

from processor import Context, Event
from processor.broker.publisher import ConfirmedPublisher
from processor.broker.topology import Binding
from processor.errors import ConfigError
from processor.ingress.signature import sign
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import Settings, TenantSettings
from processor.wiring import bindings_of, build_ingress, build_worker
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import OUTCOMES, Dispatcher
from processor.zenoti.budget import Budget, TokenBucket
from processor.zenoti.clients import ZenotiClients

NOWHERE = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens: building must not connect
SECRET = "wiring-test-secret"


class Item(BaseModel):
    n: int


class Alpha:
    name: ClassVar[str] = "alpha"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Alpha",)
    schema: ClassVar[type[BaseModel]] = Item

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Does nothing: the builders never call it."""


class Beta(Alpha):
    name: ClassVar[str] = "beta"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Beta",)


class Odd(Dispatcher):
    """A test's own dispatcher class."""


def settings(**extra: Any) -> Settings:
    tenants = {"acme": TenantSettings(webhook_secrets=[SecretStr(SECRET)],
                                      api_key=SecretStr("acme-key")),
               "keyless": TenantSettings(webhook_secrets=[SecretStr(SECRET)])}
    values: dict[str, Any] = {"amqp_url": SecretStr(NOWHERE), "api_key": SecretStr("k"),
                              "webhook_secrets": [SecretStr(SECRET)], "tenants": tenants,
                              "redis_url": None}
    return Settings(**{**values, **extra})


async def test_a_worker_without_redis_warns_of_each_tenants_budget_when_built() -> None:
    with capture_logs() as logged:
        built = build_worker(settings(), [Alpha()])
    await built.aclose()
    warned = {e["tenant"] for e in logged if e["event"] == "budget.in_process"}
    assert warned == {"default", "acme"}  # the keyless tenant has no client, so no budget
    assert "dedupe.in_process" in [e["event"] for e in logged]


async def test_every_tenants_budget_is_made_by_the_given_clients_at_build_time() -> None:
    made: list[str] = []

    def budget(tenant: str) -> Budget:
        made.append(tenant)
        return TokenBucket(60, 60.0)

    metrics = Metrics()
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500))
                                 ) as http:
        clients = ZenotiClients(settings(), metrics, http=http, budget_factory=budget)
        built = build_worker(settings(), [Alpha()], metrics=metrics, clients=clients)
        assert sorted(made) == ["acme", "default"]
        assert built.clients is clients
        await built.aclose()


async def test_the_given_parts_are_the_ones_the_worker_holds() -> None:
    metrics, log, done = Metrics(), get_logger(test="wiring"), MemoryDeduplicator(60, 10)
    publisher = ConfirmedPublisher(NOWHERE, log=log, metrics=metrics)
    built = build_worker(settings(), [Alpha(), Beta()], metrics=metrics, log=log,
                         publisher=publisher, done=done, dispatcher_types={"beta": Odd})
    assert (built.publisher, built.done, built.metrics, built.log) == (
        publisher, done, metrics, log)
    assert [type(d) for d in built.dispatchers] == [Dispatcher, Odd]
    assert not built.ready  # built, not started: nothing connected
    await built.aclose()


async def test_the_series_of_every_handler_exist_at_zero_once_built() -> None:
    # A worker that hangs before its first message still shows zeros: an alert on a rate has
    # a series to see.
    metrics = Metrics()
    built = build_worker(settings(), [Alpha(), Beta()], metrics=metrics)
    text = metrics.render().decode()
    await built.aclose()
    for handler in ("alpha", "beta"):
        for outcome in OUTCOMES:
            assert (f'zenoti_events_messages_total{{handler="{handler}",'
                    f'outcome="{outcome}"}} 0.0') in text
        assert f'zenoti_events_in_flight{{handler="{handler}"}} 0.0' in text


def test_bindings_follow_the_handlers_with_the_settings_overrides() -> None:
    overridden = settings(handler_event_types={"beta": ["Test.Beta", "Test.Gamma"]})
    assert bindings_of(overridden, [Alpha, Beta()]) == [
        Binding("alpha", ("Test.Alpha",)), Binding("beta", ("Test.Beta", "Test.Gamma"))]


def test_an_ingress_with_an_unsigned_tenant_is_refused_when_built() -> None:
    open_tenant = {"open": TenantSettings()}
    with pytest.raises(ConfigError, match="open"):
        build_ingress(settings(tenants=open_tenant), bindings=[])


async def test_an_allowed_unsigned_tenant_is_warned_of_when_built() -> None:
    with capture_logs() as logged:
        built = build_ingress(settings(tenants={"open": TenantSettings()}, allow_unsigned=True),
                              bindings=[])
    await built.aclose()
    assert [e["tenant"] for e in logged if e["event"] == "tenant.unsigned"] == ["open"]


async def test_the_ingress_answers_through_the_given_publisher_and_metrics() -> None:
    metrics, log = Metrics(), get_logger(test="wiring")
    publisher = ConfirmedPublisher(NOWHERE, log=log, metrics=metrics)  # never started
    built = build_ingress(settings(), metrics=metrics, log=log, publisher=publisher)
    assert built.publisher is publisher
    body = json.dumps({"event_id": "e1", "event_type": "Test.Alpha", "data": {"n": 1}}).encode()
    async with TestClient(TestServer(built.ingress.app())) as client:
        response = await client.post("/webhooks/zenoti", data=body,
                                     headers={"zenoti-webhook-signature": sign(SECRET, body)})
        assert response.status == 503
    await built.aclose()
    assert ('zenoti_events_deliveries_total{outcome="broker_unavailable",status="503",'
            'tenant="default"} 1.0') in metrics.render().decode()

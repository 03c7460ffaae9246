"""The topology's policies: a work queue made with another delivery limit is kept (no exit 2),
its other arguments still checked; the policies put over the management API (a stand-in for
it: the shared broker here runs no management plugin): only logged when it is away, the
command stopped when it refuses."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from aiohttp import web
from pydantic import SecretStr

from processor.broker import topology
from processor.errors import TopologyMismatch
from processor.logs import get_logger
from processor.ops import policies
from processor.ops.policies import Management, Policy
from processor.settings import Settings
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, depth, reset

QUEUE = topology.queue_name("membership-freeze")


@pytest.fixture
async def url(broker: Broker) -> AsyncIterator[str]:
    await reset(broker.url, TEST_BINDINGS)
    yield broker.url
    await reset(broker.url, TEST_BINDINGS)


@pytest.mark.integration
async def test_a_work_queue_made_with_another_delivery_limit_is_kept_and_said(url: str) -> None:
    async with channel(url) as ch:
        await ch.declare_queue(QUEUE, durable=True, arguments=topology._work_queue(QUEUE, 5))
    with structlog.testing.capture_logs() as logged:
        async with channel(url) as ch:
            await topology.declare(ch, TEST_BINDINGS, delivery_limit=10)
            await topology.declare(ch, TEST_BINDINGS, delivery_limit=10)  # the channel is open
    said = [e for e in logged if e["event"] == "topology.argument_differs"]
    assert len(said) == 2 and said[0]["queue"] == QUEUE
    assert (said[0]["queue_has"], said[0]["settings_say"]) == (5, 10)
    # More than the queue has cannot take effect (its argument is a ceiling): an error.
    assert said[0]["log_level"] == "error" and "at most 5, not 10" in said[0]["detail"]
    assert await depth(url, QUEUE) == 0


@pytest.mark.integration
async def test_settings_below_the_queues_own_limit_are_a_warning(url: str) -> None:
    async with channel(url) as ch:
        await ch.declare_queue(QUEUE, durable=True, arguments=topology._work_queue(QUEUE, 10))
    with structlog.testing.capture_logs() as logged:
        async with channel(url) as ch:
            await topology.declare(ch, TEST_BINDINGS, delivery_limit=3)
    [said] = [e for e in logged if e["event"] == "topology.argument_differs"]
    assert (said["log_level"], said["queue_has"], said["settings_say"]) == ("warning", 10, 3)


@pytest.mark.integration
async def test_a_work_queue_without_a_limit_or_with_another_argument_stops_the_process(
    url: str,
) -> None:
    arguments = {k: v for k, v in topology._work_queue(QUEUE, 10).items()
                 if k != topology.DELIVERY_LIMIT}
    async with channel(url) as ch:  # on RabbitMQ 3.x nothing would park a poison message
        await ch.declare_queue(QUEUE, durable=True, arguments=arguments)
    async with channel(url) as ch:
        with pytest.raises(TopologyMismatch, match="x-delivery-limit"):
            await topology.declare(ch, TEST_BINDINGS)
    await reset(url, TEST_BINDINGS)
    async with channel(url) as ch:  # another limit *and* another dead-letter key
        await ch.declare_queue(QUEUE, durable=True, arguments={
            **topology._work_queue(QUEUE, 5), "x-dead-letter-routing-key": "elsewhere"})
    async with channel(url) as ch:
        with pytest.raises(TopologyMismatch, match="x-dead-letter-routing-key"):
            await topology.declare(ch, TEST_BINDINGS, delivery_limit=10)


def test_the_policies_follow_the_settings() -> None:
    settings = Settings(delivery_limit=4, archive_max_age="14D")
    work, archive = policies.policies_for(settings)
    assert work.definition == {"delivery-limit": 4}
    assert archive.definition["max-age"] == "14D"
    pattern = re.compile(work.pattern)
    assert pattern.match("zenoti.h.membership-freeze")
    for other in ("zenoti.h.membership-freeze.dead", "zenoti.h.package-status.retry.5s",
                  "zenoti.unrouted", "zenoti.archive", "zenoti.enriched.unclaimed"):
        assert not pattern.match(other), other
    assert work.rabbitmqctl("v") == [
        "rabbitmqctl", "set_policy", "-p", "v", "zenoti-events-work", work.pattern,
        '{"delivery-limit": 4}', "--apply-to", "queues", "--priority", "10"]


@pytest.mark.parametrize(("amqp", "management", "expected"), [
    ("amqp://u:p@rabbit:5672/prod", None, ("http://rabbit:15672", "u", "p", "prod")),
    ("amqps://u:p%40@rabbit/%2F,amqps://u:p@other/%2F", None,
     ("https://rabbit:15671", "u", "p@", "/")),
    ("amqp://u:p@rabbit/", "https://admin:s@mgmt.internal:443/rabbit/",
     ("https://mgmt.internal:443/rabbit", "admin", "s", "/")),
    ("amqp://u:p@rabbit/v", "http://rabbit:15672", ("http://rabbit:15672", "u", "p", "v")),
])
def test_where_the_management_api_is(amqp: str, management: str | None,
                                     expected: tuple[str, str, str, str]) -> None:
    settings = Settings(amqp_url=SecretStr(amqp),
                        management_url=SecretStr(management) if management else None)
    api = Management.of(settings)
    assert (api.base, api.user, api.password, api.vhost) == expected


async def management_api(aiohttp_port: int, seen: list[tuple[str, Any]], status: int = 201
                         ) -> web.AppRunner:
    async def put(request: web.Request) -> web.Response:
        seen.append((request.path_qs if request.path_qs else request.path,
                     (await request.json(), request.headers.get("Authorization"))))
        return web.Response(status=status, text="" if status < 300 else '{"reason": "no"}')

    app = web.Application()
    app.router.add_put("/api/policies/{vhost}/{name}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", aiohttp_port).start()
    return runner


async def test_the_topology_puts_its_policies_over_the_management_api(
    unused_tcp_port: int,
) -> None:
    seen: list[tuple[str, Any]] = []
    runner = await management_api(unused_tcp_port, seen)
    settings = Settings(amqp_url=SecretStr("amqp://zen:pw@127.0.0.1/prod%2Fa"),
                        management_url=SecretStr(f"http://127.0.0.1:{unused_tcp_port}"),
                        delivery_limit=7)
    try:
        assert await policies.ensure(settings, get_logger(test="policies"))
    finally:
        await runner.cleanup()
    paths = [raw for raw, _ in seen]
    assert [p.rsplit("/", 1)[1] for p in paths] == [policies.WORK, policies.ARCHIVE]
    assert all("/api/policies/prod%2Fa/" in p for p in paths)
    body, auth = seen[0][1]
    assert body == {"pattern": policies.WORK_PATTERN, "definition": {"delivery-limit": 7},
                    "priority": 10, "apply-to": "queues"}
    assert auth is not None and auth.startswith("Basic ")


async def test_without_the_management_api_the_commands_are_logged(
    unused_tcp_port: int,
) -> None:
    settings = Settings(management_url=SecretStr(f"http://127.0.0.1:{unused_tcp_port}"))
    with structlog.testing.capture_logs() as logged:  # nothing listens there
        assert not await policies.ensure(settings, structlog.get_logger())
    [said] = [e for e in logged if e["event"] == "topology.policies_not_applied"]
    assert said["log_level"] == "warning" and "ClientConnectorError" in said["error"]
    assert said["commands"][0].startswith("rabbitmqctl set_policy -p / zenoti-events-work")
    assert json.dumps({"delivery-limit": 10}) in said["commands"][0]


async def test_a_management_api_that_refuses_stops_with_the_commands_logged(
    unused_tcp_port: int,
) -> None:
    seen: list[tuple[str, Any]] = []
    runner = await management_api(unused_tcp_port, seen, status=401)
    settings = Settings(management_url=SecretStr(f"http://127.0.0.1:{unused_tcp_port}"))
    try:
        with structlog.testing.capture_logs() as logged, pytest.raises(
                policies.PolicyRefused, match="HTTP 401"):
            await policies.ensure(settings, structlog.get_logger())
    finally:
        await runner.cleanup()
    [said] = [e for e in logged if e["event"] == "topology.policies_refused"]
    assert said["status"] == 401 and said["log_level"] == "error"
    assert said["commands"][0].startswith("rabbitmqctl set_policy -p / zenoti-events-work")


def test_a_policy_body_is_what_the_api_takes() -> None:
    policy = Policy("p", "^q$", {"delivery-limit": 3}, priority=5)
    assert policy.body() == {"pattern": "^q$", "definition": {"delivery-limit": 3},
                             "priority": 5, "apply-to": "queues"}


def test_the_kubernetes_policies_are_the_topology_commands() -> None:
    """deploy/k8s/base/policies.yaml says what `zenoti-events topology` would put, with the
    default settings (the ConfigMap's)."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "policies.yaml"
    objects = {o["metadata"]["name"]: o["spec"] for o in yaml.safe_load_all(path.read_text())}
    for policy in policies.policies_for(Settings()):
        spec = objects.pop(policy.name)
        assert (spec["name"], spec["pattern"], spec["applyTo"], spec["priority"]) == (
            policy.name, policy.pattern, policy.apply_to, policy.priority)
        assert spec["definition"] == policy.definition
        assert spec["rabbitmqClusterReference"] == {"name": "zenoti-events-rabbitmq"}
    assert not objects

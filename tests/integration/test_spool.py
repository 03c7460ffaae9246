"""The ingress with a spool, against the real broker: what the broker does not take is kept on
disk and answered 202, then forwarded as a direct publish would have sent it, in order.

"The broker away" here is the broker refusing us: the test's vhost loses the guest user's
permissions and its connections are closed (the broker itself runs on, untouched)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from processor import wiring
from processor.broker import topology
from processor.errors import ConfigError
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import Settings
from processor.spool.forwarder import Forwarding
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, drain, reset
from tests.integration.test_ingress import FREEZE, settings_for, signed

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]
KEPT = "test.spool.kept"  # every event published, kept (a listener would be closed with us)


def _delivery(n: int) -> bytes:
    return json.dumps({**FREEZE, "id": f"d{n}", "event_id": f"e{n}"}).encode()


def _refuse(broker: Broker) -> None:
    assert broker.vhost
    broker.ctl("clear_permissions", "-p", broker.vhost, "guest")
    broker.close_connections()


def _admit(broker: Broker) -> None:
    assert broker.vhost
    broker.ctl("set_permissions", "-p", broker.vhost, "guest", ".*", ".*", ".*")


async def _serving(settings: Settings, metrics: Metrics) -> AsyncIterator[Client]:
    """The ingress of ``settings`` with its forwarder, as ``IngressProcess.serve`` runs them."""
    log = get_logger(test="spool")
    built = wiring.build_ingress(settings, bindings=TEST_BINDINGS, metrics=metrics, log=log)
    assert built.spool is not None
    forwarding = Forwarding(built.spool, built.publisher, settings, log)
    await built.publisher.start(wait=5)
    await forwarding.start()
    client = TestClient(TestServer(built.ingress.app()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await forwarding.finish()
        await built.aclose()


def _spooling(broker: Broker, directory: Path, **extra: Any) -> Settings:
    return settings_for(broker.url, spool_dir=directory, confirm_timeout=5.0,
                        spool_drain_seconds=0.5, **extra)


async def _until(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


@pytest.fixture
async def declared(broker: Broker) -> AsyncIterator[Broker]:
    """The topology declared (so a listener can bind before the broker turns us away),
    and the guest's permissions restored whatever the test did."""
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        await ch.queue_delete(KEPT)
        kept = await ch.declare_queue(KEPT, durable=True)
        await kept.bind(topology.EVENTS, "#")
    yield broker
    _admit(broker)


async def test_deliveries_the_broker_refuses_are_spooled_then_forwarded_in_order(
    declared: Broker, tmp_path: Path,
) -> None:
    metrics = Metrics()
    gauge = metrics.registry.get_sample_value
    _refuse(declared)
    async for client in _serving(_spooling(declared, tmp_path), metrics):
        assert (await client.get("/readyz")).status == 200  # Zenoti must keep sending
        bodies = [_delivery(n) for n in range(30)]
        for body in bodies:
            answer = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
            assert (answer.status, (await answer.json())["status"]) == (202, "spooled")
        assert gauge("zenoti_events_spool_entries") == 30
        resent = await client.post("/webhooks/zenoti", data=bodies[0],
                                   headers=signed(bodies[0]))
        assert (await resent.json())["status"] == "duplicate"

        _admit(declared)
        messages = await drain(declared.url, KEPT, 30)
        assert [m.body for m in messages] == bodies  # every one, once, in order
        assert [m.message_id for m in messages] == [f"default:e{n}" for n in range(30)]
        assert all(m.headers["tenant"] == "default" and m.delivery_mode == 2
                   and m.routing_key == "guest.membership.freeze" for m in messages)
        await _until(lambda: gauge("zenoti_events_spool_entries") == 0)
        assert gauge("zenoti_events_spool_forwards_total") == 30
        assert gauge("zenoti_events_spool_bytes") == 0

        after = _delivery(99)  # the spool is empty: straight to the broker again
        answer = await client.post("/webhooks/zenoti", data=after, headers=signed(after))
        assert (await answer.json())["status"] == "accepted"
    assert not list(tmp_path.glob("*.seg"))


async def test_a_spool_left_on_disk_is_forwarded_by_the_next_process_first(
    declared: Broker, tmp_path: Path,
) -> None:
    _refuse(declared)
    async for client in _serving(_spooling(declared, tmp_path), Metrics()):
        for n in range(5):
            body = _delivery(n)
            assert (await client.post("/webhooks/zenoti", data=body,
                                      headers=signed(body))).status == 202
    assert list(tmp_path.glob("*.seg")), "left on disk: the broker was away at the stop"

    _admit(declared)
    async for client in _serving(_spooling(declared, tmp_path), Metrics()):
        body = _delivery(5)
        answer = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
        assert answer.status == 202
        messages = await drain(declared.url, KEPT, 6)
    assert [m.message_id for m in messages] == [f"default:e{n}" for n in range(6)]


async def test_two_processes_never_share_a_spool(declared: Broker, tmp_path: Path) -> None:
    async for _ in _serving(_spooling(declared, tmp_path), Metrics()):
        with pytest.raises(ConfigError, match="in use by another process"):
            async for _ in _serving(_spooling(declared, tmp_path), Metrics()):
                pass


async def test_a_full_spool_answers_503_with_retry_after_naming_it(
    declared: Broker, tmp_path: Path,
) -> None:
    _refuse(declared)
    settings = _spooling(declared, tmp_path, spool_max_bytes=1024 * 1024,
                         max_body_bytes=64 * 1024)
    async for client in _serving(settings, Metrics()):
        statuses: list[tuple[int, str]] = []
        for n in range(40):
            body = json.dumps({**FREEZE, "event_id": f"big{n}", "pad": "x" * 60_000}).encode()
            answer = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
            statuses.append((answer.status, (await answer.json()).get("status", "")))
            if answer.status == 503:
                assert answer.headers["Retry-After"] == "30"
                assert (await answer.json())["error"] == "spool_full"
                break
        assert statuses[-1][0] == 503, statuses
        assert set(statuses[:-1]) == {(202, "spooled")}, statuses


async def test_a_park_reason_quoting_a_huge_body_is_bounded_and_blocks_nothing(
    declared: Broker, tmp_path: Path,
) -> None:
    """A signed body whose problem quotes 200 KB of it: parked with a bounded error header
    (a header over one frame would make the broker drop the connection at every try)."""
    bad = json.dumps({"event_type": "x", "data": {}, "event_timestamp": "A" * 200_000})
    async for client in _serving(_spooling(declared, tmp_path, max_body_bytes=1024 * 1024),
                                 Metrics()):
        answer = await client.post("/webhooks/zenoti", data=bad, headers=signed(bad.encode()))
        assert (answer.status, (await answer.json())["status"]) == (202, "parked")
        body = _delivery(1)
        answer = await client.post("/webhooks/zenoti", data=body, headers=signed(body))
        assert (await answer.json())["status"] == "accepted"
    [parked] = await drain(declared.url, topology.UNROUTED, 1)
    assert len(str(parked.headers["x-zenoti-error"])) <= 1100

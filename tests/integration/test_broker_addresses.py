"""``AMQP_URL`` listing a dead address before the live broker: every process passes over the
dead one, says which address it chose (without credentials), and events flow."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import pytest

from processor.broker import topology
from processor.broker.connect import connect, shown
from processor.cli import main
from tests.conftest import Broker
from tests.integration.amqp import collect, listener, reset
from tests.integration.processes import Stack
from tests.integration.test_end_to_end import ALL, OUTPUTS, one_of_each_kind, post
from tests.rabbit import quiet_port

pytestmark = pytest.mark.integration


@pytest.fixture
def dead_first(broker: Broker) -> str:
    """A refused address (nothing listens there), then the tests' broker."""
    vhost = urlsplit(broker.url).path  # one broker's addresses: the same vhost
    return f"amqp://guest:guest@127.0.0.1:{quiet_port()}{vhost},{broker.url}"


@pytest.fixture
async def running(dead_first: str, broker: Broker) -> AsyncIterator[Stack]:
    await reset(broker.url, ALL)
    with Stack(dead_first, output="capture") as s:
        s.sandbox()
        s.ingress()
        s.worker()
        yield s


def said(output: str, event: str) -> list[str]:
    """The addresses the JSON log lines of ``output`` name in their ``event`` lines."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line["address"] for line in lines if line.get("event") == event]


async def test_the_ingress_and_the_worker_pass_over_a_dead_address_and_events_flow(
    broker: Broker, running: Stack,
) -> None:
    deliveries = one_of_each_kind(seed=11)
    async with listener(broker.url, topology.ENRICHED) as received:
        for delivery in deliveries:
            assert post(running, delivery.body).status_code == 202
        out = await collect(received, len(deliveries), timeout=30)
    assert {m.routing_key for m in out} == set(OUTPUTS.values())
    _, ingress, worker = running.children
    for child in (ingress, worker):
        logged = running.tail(child, 200_000)
        assert "guest:guest" not in logged
        # Its publisher and (the worker) its consumers' session, each once.
        assert set(said(logged, "broker.address_chosen")) == {shown(broker.url)}


def test_the_topology_and_dlq_commands_pass_over_a_dead_address(
    broker: Broker, dead_first: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", dead_first)
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")
    assert main(["topology"]) == 0
    assert main(["dlq", "list", "unrouted", "--json"]) == 0
    logged = capsys.readouterr().err
    dead = shown(dead_first.partition(",")[0])
    assert said(logged, "broker.address_failed") == [dead, dead]
    assert said(logged, "broker.address_chosen") == [shown(broker.url), shown(broker.url)]
    assert "guest:guest" not in logged


def test_a_refused_connection_is_closed_in_its_loop_and_leaves_nothing_to_collect(
    broker: Broker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handshake the broker refuses (a wrong password) raises, and the half-made connection
    is closed there: collected later in another thread (no loop there), it leaves no
    never-awaited close behind (aio-pika's ``__del__`` would create one)."""
    parts = urlsplit(broker.url)
    wrong = f"amqp://guest:not-the-password@{parts.hostname}:{parts.port}{parts.path}"
    unraised: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraised.append(repr(u.exc_value)))

    async def attempt() -> str:
        try:
            await connect(wrong, attempt_timeout=10, name="test")
        except aio_pika.exceptions.AMQPError as exc:
            return type(exc).__name__
        return "connected"

    loop = asyncio.new_event_loop()
    gc.disable()  # collected below, in the thread, not whenever the allocator decides
    try:
        assert loop.run_until_complete(attempt()) == "ProbableAuthenticationError"
        collector = threading.Thread(target=gc.collect)
        collector.start()
        collector.join(timeout=30)
    finally:
        gc.enable()
        loop.close()
    assert unraised == []

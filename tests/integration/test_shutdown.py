"""SIGTERM on a busy worker: it stops taking messages, finishes what it holds, exits 0, and
leaves the rest in the queue."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import build_deliveries
from processor.dev.sandbox.organisation import Organisation
from tests.conftest import Broker
from tests.integration.amqp import collect, depth, listener, reset
from tests.integration.processes import Stack, stack
from tests.integration.test_end_to_end import ALL, post

pytestmark = pytest.mark.integration


@pytest.fixture
async def running(broker: Broker) -> AsyncIterator[Stack]:
    await reset(broker.url, ALL)
    with stack(broker.url) as s:
        s.sandbox("--latency-ms", "1500", "--calls-per-window", "10000")
        s.ingress()
        yield s


def in_flight(running: Stack) -> float:
    text = httpx.get(f"http://127.0.0.1:{running.worker_port}/metrics", timeout=2).text
    return sum(float(v) for v in re.findall(r"^zenoti_events_in_flight\{.*\} (\S+)$", text, re.M))


async def test_sigterm_finishes_in_flight_work_and_leaves_the_rest_queued(running: Stack) -> None:
    guestpasses = [d for d in build_deliveries(Organisation.generate(1), 300, seed=3,
                                               unknown_ratio=0.0)
                   if d.event_type == "Guestpass.redeemed"][:20]
    for delivery in guestpasses:
        assert post(running, delivery.body).status_code == 202
    async with listener(running.amqp_url, topology.ENRICHED) as received:
        worker = running.worker("--handler", "guestpass-redeemed")
        deadline = time.monotonic() + 20
        while in_flight(running) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        holding = in_flight(running)
        assert holding > 0
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        finished = await collect(received, len(guestpasses), timeout=3)
    left = await depth(running.amqp_url, "zenoti.h.guestpass-redeemed")
    assert len(finished) >= holding
    assert len(finished) + left == len(guestpasses)

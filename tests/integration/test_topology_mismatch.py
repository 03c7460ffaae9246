"""A queue that exists with other arguments is a configuration error: every process that declares
the topology (topology command, worker, ingress) exits at once with one log line naming the
queue and the argument, instead of reconnecting forever."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel

from processor.broker import topology
from processor.broker.publisher import ConfirmedPublisher
from processor.broker.topology import Binding
from processor.errors import TopologyMismatch
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import Settings
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, reset
from tests.integration.processes import Stack

pytestmark = pytest.mark.integration

ALL = [*TEST_BINDINGS, Binding("example-echo", ("Example.Echo",))]
QUEUE = topology.queue_name("membership-freeze")
DEFAULT_LIMIT = Settings.model_fields["delivery_limit"].default


@pytest.fixture
async def url(broker: Broker) -> AsyncIterator[str]:
    """The broker, with the work queue of membership-freeze declared with another overflow
    (a delivery limit that differs is no mismatch: tests/integration/test_policies.py)."""
    await reset(broker.url, ALL)
    async with channel(broker.url) as ch:
        await ch.declare_queue(QUEUE, durable=True, arguments={
            **topology._work_queue(QUEUE, DEFAULT_LIMIT), "x-overflow": "drop-head"})
    yield broker.url
    await reset(broker.url, ALL)


def run(url: str, *argv: str) -> tuple[int | None, float, list[dict[str, object]]]:
    """Run ``zenoti-events argv``; its exit code (``None`` if still running after 20 s), how
    long it ran, and its JSON log lines."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "processor.cli", *argv],
                             env=Stack(url).env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    elapsed = time.monotonic() - started
    lines = [json.loads(line) for line in (out + err).decode().splitlines()
             if line.startswith("{")]
    return child.returncode if elapsed < 20 else None, elapsed, lines


def assert_says_which(lines: list[dict[str, object]]) -> None:
    [said] = [line for line in lines if line.get("event") == "process.config_error"]
    assert said["kind"] == "TopologyMismatch"
    assert QUEUE in str(said["error"]) and "x-overflow" in str(said["error"])
    assert "= drop-head but this process declares reject-publish" in str(
        said["error"]).replace("'", "")


@pytest.mark.parametrize("command", ["topology", "worker", "ingress"])
def test_a_process_meeting_a_queue_with_other_arguments_exits_naming_it(
    url: str, command: str
) -> None:
    code, elapsed, lines = run(url, command)
    assert code == 2, f"{command} still running or exit {code} after {elapsed:.1f} s: {lines}"
    assert elapsed < 10
    assert_says_which(lines)


async def test_declare_raises_a_topology_mismatch_naming_the_queue_and_argument(
    url: str,
) -> None:
    async with channel(url) as ch:
        with pytest.raises(TopologyMismatch) as info:
            await topology.declare(ch, ALL, delivery_limit=DEFAULT_LIMIT)
    assert f"queue {QUEUE!r}" in str(info.value)
    assert "x-overflow = 'drop-head' but this process declares 'reject-publish'" in str(
        info.value)


def publisher(url: str) -> ConfirmedPublisher:
    async def declare(ch: AbstractChannel) -> None:
        await topology.declare(ch, ALL, delivery_limit=DEFAULT_LIMIT)

    return ConfirmedPublisher(url, log=get_logger(test="mismatch"), metrics=Metrics(),
                              on_connect=declare, max_delay=0.2)


async def test_the_publisher_start_raises_the_mismatch_its_first_connection_meets(
    url: str,
) -> None:
    publishing = publisher(url)
    try:
        with pytest.raises(TopologyMismatch, match=QUEUE):
            await publishing.start()
        assert not publishing.ready
    finally:
        await publishing.close()


async def test_a_mismatch_met_after_start_is_raised_by_until_stopped(url: str) -> None:
    publishing = publisher(url)
    try:
        await publishing.start(wait=0)  # returns before the first connection is made
        async with asyncio.timeout(10):
            with pytest.raises(TopologyMismatch, match=QUEUE):
                await publishing.until_stopped(asyncio.Event())
        assert isinstance(publishing.fatal, TopologyMismatch)
    finally:
        await publishing.close()

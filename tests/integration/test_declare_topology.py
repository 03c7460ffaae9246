"""DECLARE_TOPOLOGY=false on the real broker: the ingress and workers declare nothing, they
check passively that what they use exists, and stop naming every missing exchange and queue at
once; a passive check needs no permission at all, so a user without configure (nor read) rights
can make it. Nothing here stops or alarms the broker; the users made are deleted."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from processor.broker import topology
from processor.errors import ConfigError
from tests.conftest import Broker
from tests.integration.amqp import DEFAULT_TIERS, TEST_BINDINGS, channel, reset
from tests.integration.processes import Stack

pytestmark = pytest.mark.integration

WORKER_NEEDS = topology.worker_needs(TEST_BINDINGS, DEFAULT_TIERS)
ALL = [*TEST_BINDINGS, topology.Binding("example-echo", ("Example.Echo",))]  # all installed


@pytest.fixture
async def url(broker: Broker) -> AsyncIterator[str]:
    """The broker, with none of the topology in its virtual host."""
    await reset(broker.url, ALL)
    yield broker.url
    await reset(broker.url, ALL)


@pytest.fixture
def powerless(broker: Broker) -> Iterator[str]:
    """The URL of a user allowed nothing in the test's virtual host (configure, write and read
    all ``^$``)."""
    if not broker.vhost:
        pytest.skip("needs the local broker and rabbitmqctl, or a private node")
    name, password = f"zenoti-events-test-{secrets.token_hex(4)}", secrets.token_hex(16)
    broker.ctl("add_user", name, password)
    try:
        broker.ctl("set_permissions", "-p", broker.vhost, name, "^$", "^$", "^$")
        parts = urlsplit(broker.url)
        netloc = f"{quote(name)}:{password}@{parts.hostname}:{parts.port or 5672}"
        yield urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    finally:
        broker.ctl("delete_user", name)


async def test_every_missing_exchange_and_queue_is_named_at_once(url: str) -> None:
    async with channel(url) as ch:
        with pytest.raises(ConfigError) as raised:
            await topology.check(ch, WORKER_NEEDS)
        assert not ch.is_closed  # the probes' channels closed, not this one
    said = str(raised.value)
    for name in WORKER_NEEDS.exchanges:
        assert f"exchange {name}" in said
    for name in WORKER_NEEDS.queues:
        assert f"queue {name}" in said
    assert "zenoti-events topology" in said


async def test_only_what_is_missing_is_named(url: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS, retry_tiers=DEFAULT_TIERS)
        gone = topology.delay_queue_name("package-status", DEFAULT_TIERS[-1])
        await ch.queue_delete(gone)
        await ch.exchange_delete(topology.PARKED)
        with pytest.raises(ConfigError) as raised:
            await topology.check(ch, WORKER_NEEDS)
        with pytest.raises(ConfigError) as ingress_raised:
            await topology.check(ch, topology.ingress_needs())
    assert str(raised.value).startswith(f"the broker has no queue {gone}:")
    assert str(ingress_raised.value).startswith(
        f"the broker has no exchange {topology.PARKED}:")


async def test_a_declared_topology_passes_for_a_user_allowed_nothing(
        url: str, powerless: str) -> None:
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS, retry_tiers=DEFAULT_TIERS)
    async with channel(powerless) as ch:
        await topology.check(ch, WORKER_NEEDS)
        await topology.check(ch, topology.ingress_needs())


async def test_a_user_allowed_nothing_is_told_what_is_missing_not_refused(
        url: str, powerless: str) -> None:
    async with channel(powerless) as ch:
        with pytest.raises(ConfigError,
                           match=r"exchange zenoti\.ingress, exchange zenoti\.ingress\.parked:"):
            await topology.check(ch, topology.ingress_needs())


def _run(url: str, *argv: str) -> tuple[int | None, list[dict[str, object]]]:
    """Run ``zenoti-events argv`` with DECLARE_TOPOLOGY=false: its exit code (``None`` if still
    running after 20 s) and its JSON log lines."""
    env = {**Stack(url).env, "ZENOTI_EVENTS_DECLARE_TOPOLOGY": "false"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "processor.cli", *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
    lines = [json.loads(line) for line in (out + err).decode().splitlines()
             if line.startswith("{")]
    return child.returncode if time.monotonic() - started < 20 else None, lines


@pytest.mark.parametrize(("command", "missing"), [
    ("ingress", [topology.INGRESS, topology.PARKED]),
    ("worker", [topology.DEAD, topology.ENRICHED, topology.queue_name("example-echo")]),
])
async def test_a_process_that_does_not_declare_exits_naming_what_is_missing(
        url: str, command: str, missing: list[str]) -> None:
    code, lines = _run(url, command)
    assert code == 2, lines
    [said] = [line for line in lines if line.get("event") == "process.config_error"]
    for name in missing:
        assert name in str(said["error"])
    async with channel(url) as ch:  # and it declared nothing
        with pytest.raises(ConfigError):
            await topology.check(ch, topology.Needs(exchanges=(topology.EVENTS,)))

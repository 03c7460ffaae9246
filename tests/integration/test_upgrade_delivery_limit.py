"""docs/operations.md, "Changing the delivery limit", run as written on a live system: the
sandbox, the ingress and a worker serve in a virtual host of this test on the local broker,
deliveries flow the whole time, and the doc's commands (``kubectl ... exec <node> --`` dropped,
``-p /`` made this vhost) lower the limit from the queues' own 10 to 3 without a restart. Then:
the doc's check shows the policy on every work queue and on nothing else; a message that always
comes back (its consumer dies holding it: played here by get + reject with requeue) is parked
after exactly 3 + 1 deliveries with reason ``delivery_limit``; a worker started with
``DELIVERY_LIMIT=3`` meets the queues made with 10 and serves (no exit 2); and every delivery
comes out enriched: none lost. And the other way (queues made with 3, the policy at 10): the
queue's own argument is the ceiling, parked after 3 + 1."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import httpx
import pytest

from processor.broker import topology
from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.launcher import free_port
from processor.dev.sandbox.organisation import Organisation
from processor.message import SOURCE_EVENT_TYPE
from tests.conftest import LOCAL, Broker, missing
from tests.integration.amqp import TEST_BINDINGS, channel, collect, listener
from tests.integration.processes import SECRET, Stack

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
PREFIX = 'kubectl -n "$NS" exec zenoti-events-rabbitmq-server-0 -- '
POISONED = topology.queue_name("package-status")
KINDS = {"Guest.Membership.Freeze": "membership-freeze",
         "Guestpass.redeemed": "guestpass-redeemed",
         "Guest.Package.StatusUpdate": "package-status"}


def doc_steps() -> list[list[str]]:
    """The commands of the doc's section, in order, as argument lists."""
    text = DOC.read_text()
    section = text[text.index("### Changing the delivery limit"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the section has no commands"
    lines = [line for line in block[1].splitlines() if line.strip()]
    assert lines and all(line.startswith(PREFIX) for line in lines), lines
    return [shlex.split(line.removeprefix(PREFIX)) for line in lines]


def ctl(argv: list[str], vhost: str) -> str:
    """A doc command against this test's vhost (``-p /`` there becomes ``-p <vhost>``)."""
    at = argv.index("-p")
    argv = [*argv[:at + 1], vhost, *argv[at + 2:]]
    assert argv[0] == "rabbitmqctl"
    done = subprocess.run(["rabbitmqctl", "-q", *argv[1:]], capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


@pytest.fixture
def vhost(broker: Broker) -> Iterator[str]:
    """A virtual host of this test alone on the local broker (policies are per vhost)."""
    if broker.vhost is None or not shutil.which("rabbitmqctl"):
        missing("needs the local broker and rabbitmqctl (policies set with rabbitmqctl)")
    name = f"zenoti-events-upgrade-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*",
                    ".*"], check=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=True, timeout=60)


def deliveries() -> dict[str, list[Delivery]]:
    """Deliveries of each kind, by handler."""
    found: dict[str, list[Delivery]] = {name: [] for name in KINDS.values()}
    for delivery in build_deliveries(Organisation.generate(1), 400, seed=11, unknown_ratio=0.0):
        found[KINDS[delivery.event_type]].append(delivery)
    return found


class Sender(threading.Thread):
    """Posts ``batch`` to the ingress, one every ``pause`` seconds; counts the 202s."""

    def __init__(self, stack: Stack, batch: list[Delivery], pause: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.stack, self.batch, self.pause = stack, batch, pause
        self.accepted = 0

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for delivery in self.batch:
                answer = client.post(self.stack.webhook_url, content=delivery.body,
                                     headers=delivery.headers(SECRET))
                assert answer.status_code == 202, answer.text
                self.accepted += 1
                threading.Event().wait(self.pause)


async def deliveries_until_parked(url: str) -> int:
    """Publish one message to the poisoned queue and play a consumer that dies on it each time
    (get, then reject with requeue: a return, as a killed worker's is); how many deliveries it
    took before the broker parked it."""
    async with channel(url) as ch:
        await ch.default_exchange.publish(
            aio_pika.Message(b"poison", message_id="poison"), routing_key=POISONED)
        queue = await ch.get_queue(POISONED)
        taken = 0
        for _ in range(20):
            message = await queue.get(timeout=5, fail=False)
            if message is None:
                break
            assert message.message_id == "poison"
            taken += 1
            await message.reject(requeue=True)
        return taken


async def parked_reason(url: str) -> str:
    async with channel(url) as ch:
        lot = await ch.get_queue(topology.dead_queue_name("package-status"))
        for _ in range(50):
            message = await lot.get(fail=False)
            if message is not None:
                await message.ack()
                deaths = message.headers.get("x-death")
                assert isinstance(deaths, list) and isinstance(deaths[0], dict)
                return str(deaths[0]["reason"])
            await asyncio.sleep(0.1)
    return "not parked"


async def test_the_delivery_limit_changes_on_a_live_system_as_documented(vhost: str) -> None:
    url = f"{LOCAL}{quote(vhost, safe='')}"
    steps = doc_steps()
    kinds = deliveries()
    live = kinds["membership-freeze"][:40] + kinds["guestpass-redeemed"][:40]
    later = kinds["package-status"][:30]
    with Stack(url) as stack:
        stack.sandbox()
        stack.ingress()
        worker = stack.worker("--handler", "membership-freeze", "--handler",
                              "guestpass-redeemed")
        async with listener(url, topology.ENRICHED) as received:
            sending = Sender(stack, live)
            sending.start()
            await asyncio.sleep(1)  # deliveries flowing, the worker handling them
            ctl(steps[0], vhost)  # the new limit, live
            listed = ctl(steps[1], vhost)
            took = await deliveries_until_parked(url)
            assert await parked_reason(url) == "delivery_limit"
            assert worker.poll() is None, "the worker did not restart"
            stack.settings["ZENOTI_EVENTS_DELIVERY_LIMIT"] = "3"  # the ConfigMap step
            stack.worker("--handler", "package-status", port=free_port())
            for delivery in later:
                assert (await asyncio.to_thread(_post, stack, delivery)) == 202
            await asyncio.to_thread(sending.join, 60)
            out = await collect(received, len(live) + len(later), timeout=90)
    assert took == 3 + 1
    policy_of = {row.split("\t")[0]: row.split("\t")[1:] for row in listed.splitlines()
                 if row.startswith("zenoti.")}
    for handler in KINDS.values():
        name = topology.queue_name(handler)
        assert policy_of[name][0] == "zenoti-events-work", policy_of[name]
        assert '{"x-delivery-limit",10}' in policy_of[name][1]  # the queue's own stays
    others = {n: p[0] for n, p in policy_of.items() if not re.fullmatch(r"zenoti\.h\.[^.]+", n)}
    assert set(others.values()) <= {""}, others
    assert sending.accepted == len(live)
    assert {(m.headers or {}).get(SOURCE_EVENT_TYPE) for m in out} == set(KINDS)
    assert len({m.message_id for m in out}) == len(live) + len(later)


def _post(stack: Stack, delivery: Delivery) -> int:
    return httpx.post(stack.webhook_url, content=delivery.body,
                      headers=delivery.headers(SECRET), timeout=10).status_code


async def test_a_policy_above_the_queues_own_limit_does_not_raise_it(vhost: str) -> None:
    """The other direction: work queues made with 3, the doc's policy at 10. The queue's own
    argument is the ceiling: the message is parked after 3 + 1 deliveries, not 10 + 1 (a
    policy can lower a queue's limit, never raise it; a test that only lowers could not tell
    "the lower wins" from "the policy wins")."""
    url = f"{LOCAL}{quote(vhost, safe='')}"
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS, delivery_limit=3)
    step = doc_steps()[0]
    ten = [part.replace('"delivery-limit": 3', '"delivery-limit": 10') for part in step]
    assert ten != step, "the doc's command no longer sets a limit of 3"
    ctl(ten, vhost)
    listed = ctl(doc_steps()[1], vhost)
    row = next(r.split("\t") for r in listed.splitlines() if r.startswith(POISONED + "\t"))
    assert row[1] == "zenoti-events-work" and '{"x-delivery-limit",3}' in row[2], row
    assert await deliveries_until_parked(url) == 3 + 1
    assert await parked_reason(url) == "delivery_limit"

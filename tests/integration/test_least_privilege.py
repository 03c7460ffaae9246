"""Least privilege on the broker, for real: the users of deploy/k8s/base/rabbitmq-users.yaml,
made by deploy/rabbitmq/users.sh in a virtual host of this test's own on the local broker.
`zenoti-events topology` declares the topology (and puts its policies) as the topology user, then
the real ingress and worker run with DECLARE_TOPOLOGY=false as theirs, and signed deliveries come
out enriched. The ingress's user can neither read a handler's queue, nor publish the workers'
output or through the default exchange, nor declare anything; the worker's cannot publish to the
ingress's exchange nor declare; the console's browses, replays and purges the parking lots and
replays from the archive, through the console's own code, and can neither declare, nor read a work
queue, nor publish the ingress's input or the workers' output; KEDA's reads queue depths through
the management API and nothing over AMQP. The users and the virtual host are deleted afterwards.
Nothing here stops or alarms the broker."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aio_pika
import aiormq
import httpx
import pytest
from pydantic import SecretStr

from processor.broker import topology
from processor.dev.ports import answers
from processor.dev.stack import readyz
from processor.message import EVENT_TYPE, REASON, RECEIVED_AT
from processor.ops import archive, dlq, replay
from processor.ops.parking import Filter
from processor.settings import Settings
from schemas.envelope import routing_key
from tests.integration.amqp import collect, listener
from tests.integration.processes import Stack, stack
from tests.integration.test_end_to_end import OUTPUTS, one_of_each_kind, post

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS_SH = ROOT / "deploy" / "rabbitmq" / "users.sh"
LOCAL = "127.0.0.1:5672"
HANDLER_QUEUE = topology.queue_name("package-status")


@dataclass(frozen=True)
class Users:
    vhost: str
    prefix: str
    passwords: dict[str, str]

    def url(self, component: str, guest: bool = False) -> str:
        user = "guest" if guest else f"{self.prefix}-{component}"
        password = "guest" if guest else self.passwords[component]
        return f"amqp://{user}:{password}@{LOCAL}/{quote(self.vhost, safe='')}"


def _ctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60)
    return done.stdout


@pytest.fixture
def users() -> Iterator[Users]:
    if os.environ.get("AMQP_URL") or not shutil.which("rabbitmqctl") or not answers(
            f"amqp://guest:guest@{LOCAL}/"):
        pytest.skip("needs the local broker and rabbitmqctl (users are made with it)")
    tag = secrets.token_hex(4)
    made = Users(f"zenoti-events-lp-{tag}", f"zenoti-events-lp-{tag}",
                 {c: secrets.token_hex(24)
                  for c in ("topology", "ingress", "worker", "console", "keda")})
    _ctl("add_vhost", made.vhost)
    try:
        # guest only observes (the listener on zenoti.enriched), as a consumer would
        _ctl("set_permissions", "-p", made.vhost, "guest", ".*", ".*", ".*")
        env = {**os.environ, "VHOST": made.vhost, "PREFIX": made.prefix,
               **{f"{c.upper()}_PASSWORD": p for c, p in made.passwords.items()}}
        done = subprocess.run(["sh", str(USERS_SH)], env=env, capture_output=True, text=True,
                               timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        yield made
    finally:
        for component in made.passwords:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", f"{made.prefix}-{component}"],
                           capture_output=True, timeout=60)
        _ctl("delete_vhost", made.vhost)


def _declare(s: Stack, users: Users) -> None:
    """`zenoti-events topology` as the topology user, the only one allowed to configure."""
    declared = subprocess.run(
        [sys.executable, "-m", "processor.cli", "topology"], capture_output=True, text=True,
        timeout=60, env={**s.env, "ZENOTI_EVENTS_AMQP_URL": users.url("topology"),
                         "ZENOTI_EVENTS_DECLARE_TOPOLOGY": "true"})
    assert declared.returncode == 0, declared.stdout + declared.stderr
    # the topology user's policymaker tag let it put the policies (if the API is there)
    assert "topology.policies_not_applied" not in declared.stdout + declared.stderr or (
        not _management_api()), declared.stdout + declared.stderr


@pytest.fixture
def running(users: Users) -> Iterator[Stack]:
    with stack(users.url("guest", guest=True)) as s:
        s.sandbox()
        _declare(s, users)
        for name in ("ingress", "worker"):
            port = s.ingress_port if name == "ingress" else s.worker_port
            s.spawn(name, env={**s.env, "ZENOTI_EVENTS_AMQP_URL": users.url(name),
                               "ZENOTI_EVENTS_DECLARE_TOPOLOGY": "false"}, ready=readyz(port))
        yield s


def _management_api() -> bool:
    try:
        httpx.get("http://127.0.0.1:15672/api/overview", timeout=5)
    except httpx.TransportError:
        return False
    return True


async def test_events_flow_end_to_end_with_least_privilege_users(
        users: Users, running: Stack) -> None:
    deliveries = one_of_each_kind()
    async with listener(users.url("guest", guest=True), topology.ENRICHED) as received:
        for delivery in deliveries:
            assert post(running, delivery.body).status_code == 202
        out = await collect(received, len(deliveries))
    assert {m.routing_key for m in out} == set(OUTPUTS.values())


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.nack(requeue=True)


async def _refused(url: str, action: str, name: str) -> bool:
    """Whether the broker refuses ``action`` (consume, declare or publish; ``""`` is the
    default exchange) on ``name`` for ``url``."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        if action == "consume":
            queue = await channel.get_queue(name, ensure=False)
            await queue.consume(_ignore)
        elif action == "declare":
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            await channel.queue_delete(name)
        else:
            exchange = (await channel.get_exchange(name, ensure=False) if name
                        else channel.default_exchange)
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="x")
        return False
    except aiormq.exceptions.ChannelAccessRefused:
        return True
    finally:
        await connection.close()


async def test_each_user_is_refused_what_it_does_not_need(users: Users, running: Stack) -> None:
    # the topology exists: the topology user declared it
    assert await _refused(users.url("ingress"), "publish", topology.ENRICHED)
    assert await _refused(users.url("ingress"), "publish", "")  # the default exchange
    assert await _refused(users.url("worker"), "publish", topology.INGRESS)
    assert await _refused(users.url("keda"), "consume", HANDLER_QUEUE)
    assert await _refused(users.url("keda"), "publish", topology.INGRESS)
    for component in ("ingress", "worker", "keda"):  # only the topology user declares
        assert await _refused(users.url(component), "declare", "zenoti.h.made-up")
    # and allowed what it does
    assert not await _refused(users.url("ingress"), "publish", topology.INGRESS)
    assert not await _refused(users.url("ingress"), "publish", topology.PARKED)
    assert not await _refused(users.url("worker"), "publish", topology.ENRICHED)
    assert not await _refused(users.url("worker"), "publish", "")  # retries, to delay queues
    assert not await _refused(users.url("topology"), "declare", "zenoti.h.made-up")


async def test_the_ingress_user_cannot_read_a_handler_queue(users: Users, running: Stack) -> None:
    assert await _refused(users.url("ingress"), "consume", HANDLER_QUEUE)


def test_the_keda_user_reads_queue_depths_through_the_management_api(
        users: Users, running: Stack) -> None:
    api = f"http://127.0.0.1:15672/api/queues/{quote(users.vhost, safe='')}/{HANDLER_QUEUE}"
    try:
        answer = httpx.get(api, auth=(f"{users.prefix}-keda", users.passwords["keda"]),
                           timeout=10)
    except httpx.TransportError:
        pytest.skip("the local broker has no management API on 15672")
    assert answer.status_code == 200, answer.text
    assert "messages" in answer.json()
    # a user with no tag has no management access at all
    denied = httpx.get(api, auth=(f"{users.prefix}-worker", users.passwords["worker"]),
                       timeout=10)
    assert denied.status_code == 401


@pytest.fixture
def declared(users: Users) -> Iterator[Users]:
    """The topology, declared by its user, and no process running: nothing consumes what the
    console replays."""
    with stack(users.url("guest", guest=True)) as s:
        _declare(s, users)
        yield users


LOT = topology.dead_queue_name("package-status")


PACKAGE_STATUS = "Guest.Package.StatusUpdate"


async def _park(url: str) -> None:
    """As an outsider (guest): three dead letters in the package-status lot; through the
    ingress's exchange (so archived too) a delivery of a type nobody handles (unrouted) and
    one the package-status handler takes (its work queue)."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for message_id in ("a", "b", "c"):
            await channel.default_exchange.publish(aio_pika.Message(
                b"{}", message_id=message_id, headers={REASON: "permanent"}), LOT)
        ingress = await channel.get_exchange(topology.INGRESS, ensure=False)
        await ingress.publish(aio_pika.Message(b"{}", message_id="u"), "guest.made.up")
        await ingress.publish(aio_pika.Message(b"{}", message_id="p", headers={
            RECEIVED_AT: datetime.now(UTC).isoformat(), EVENT_TYPE: PACKAGE_STATUS}),
            routing_key(PACKAGE_STATUS))


async def _ready(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def test_the_console_user_browses_replays_and_purges_a_lot_and_replays_the_archive(
        declared: Users) -> None:
    guest = declared.url("guest", guest=True)
    await _park(guest)
    assert await _ready(guest, HANDLER_QUEUE) == 1, "p, live"
    # the console's own code paths (processor.console calls these), as the console's user
    settings = Settings(amqp_url=SecretStr(declared.url("console")))
    async with dlq.open_lot(settings, "package-status") as lot:
        assert [m.message_id for m in await lot.browse()] == ["a", "b", "c"]
        assert await lot.replay(Filter(message_id="a"), rate=100.0) == 1
        assert await lot.purge(Filter(message_id="b")) == 1
        assert [m.message_id for m in await lot.browse()] == ["c"]
    assert await _ready(guest, HANDLER_QUEUE) == 2, "a, replayed to its work queue"
    async with dlq.open_lot(settings, dlq.UNROUTED_LOT) as unrouted:
        # back through zenoti.events with the key it was parked with (nobody takes it yet)
        assert await unrouted.replay(Filter(message_id="u"), rate=100.0) == 1
    assert await _ready(guest, topology.UNROUTED) == 1
    async with await archive.connection(settings, "console") as connection:
        found = await archive.stats(connection, idle=1.0)
    assert found.counted == 2  # u and p, as the ingress's exchange took them
    now = datetime.now(UTC)
    plan = replay.Plan(replay.Window(now - timedelta(minutes=5), now + timedelta(minutes=1)),
                       archive.handler_bindings(settings), by="console@test", rate=100.0,
                       idle=1.0)
    summary = await archive.run_replay(settings, plan, replay.Summary())
    assert summary.published == {"package-status": 1}
    assert await _ready(guest, HANDLER_QUEUE) == 3, "p again, from the archive"


async def test_the_console_user_is_refused_what_the_console_does_not_do(
        declared: Users) -> None:
    console = declared.url("console")
    assert await _refused(console, "declare", "zenoti.h.made-up")
    assert await _refused(console, "declare", LOT)  # not even a lot of its own
    assert await _refused(console, "consume", HANDLER_QUEUE)  # a work queue is the workers'
    for exchange in (topology.INGRESS, topology.PARKED, topology.ENRICHED, topology.DEAD):
        assert await _refused(console, "publish", exchange), exchange
    # and allowed what it does
    assert not await _refused(console, "consume", LOT)
    assert not await _refused(console, "publish", topology.EVENTS)  # unrouted, replayed
    assert not await _refused(console, "publish", "")  # kept or replayed by queue name

"""The benchmarks' own RabbitMQ vhost: topology, resets between runs, prefill, queue depths.

Everything happens in ``BENCH_AMQP_URL`` (default: vhost ``zenoti-bench`` of the local broker),
so a benchmark never touches the default vhost or the tests' vhosts. Outputs land in
``bench.enriched``, a classic queue capped at 10,000 messages (drop-head): a sink that costs the
broker the same for every implementation measured, and that the end-to-end scenario reads.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import unquote, urlparse

import aio_pika
from aio_pika.abc import AbstractChannel, FieldValue

from bench.workload import ROUTING_KEY, WORK_QUEUE, SignedDelivery
from processor.broker import topology
from processor.dev.deliveries import FREEZE

VHOST = "zenoti-bench"
URL = os.environ.get("BENCH_AMQP_URL", f"amqp://guest:guest@127.0.0.1:5672/{VHOST}")
SINK = "bench.enriched"
BINDINGS = [topology.Binding("membership-freeze", (FREEZE,))]
COLLECTOR = "bench.e2e"
_EXCHANGES = (topology.INGRESS, topology.PARKED, topology.EVENTS, topology.UNROUTED,
              topology.DEAD, topology.ENRICHED, topology.UNCLAIMED)
_RESET = (WORK_QUEUE, SINK, topology.UNROUTED, topology.UNCLAIMED,
          topology.dead_queue_name("membership-freeze"))


def ensure_vhost() -> None:
    """Create the vhost (and the user's permissions) with ``rabbitmqctl`` when it is missing."""
    vhost = vhost_name()
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True,
                            text=True, check=True).stdout.split()
    if vhost not in listed:
        user = urlparse(URL).username or "guest"
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user,
                        ".*", ".*", ".*"], check=True)


async def reset() -> None:
    """Declare the topology and the sink, and empty every queue a run fills."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await topology.declare(channel, BINDINGS, retry_tiers=[5.0, 30.0, 120.0, 600.0, 3600.0])
        await _declare_sink(channel)
        for name in _RESET:
            await (await channel.get_queue(name)).purge()


async def delete_all() -> None:
    """Delete what the benchmarks declared (the vhost stays, empty): every queue in it (our
    processes declare the whole topology: retry tiers, parking lots) and the exchanges, so a
    run after a topology change of the project starts from a clean slate."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        for name in {*_RESET, COLLECTOR, *_listed_queues()}:
            await channel.queue_delete(name)
        for exchange in _EXCHANGES:
            await channel.exchange_delete(exchange)


def vhost_name() -> str:
    """The vhost of ``URL``."""
    return unquote(urlparse(URL).path.lstrip("/")) or "/"


def _listed_queues() -> list[str]:
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost_name(), "name"],
                            capture_output=True, text=True, check=False).stdout.split()
    return [name for name in listed if name != "name"]


async def _declare_sink(channel: AbstractChannel) -> None:
    enriched = await channel.get_exchange(topology.ENRICHED)
    sink = await channel.declare_queue(
        SINK, durable=True, arguments={"x-max-length": 10_000, "x-overflow": "drop-head"}
    )
    await sink.bind(enriched, "#")


async def prefill(items: Iterable[SignedDelivery], batch: int = 500) -> int:
    """Queue ``items`` on the work queue as the ingress would (same headers), confirmed."""
    connection = await aio_pika.connect(URL)
    count = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS)
        pending = []
        for item in items:
            pending.append(exchange.publish(_message(item), ROUTING_KEY))
            if len(pending) >= batch:
                count += len(await asyncio.gather(*pending))
                pending = []
        count += len(await asyncio.gather(*pending))
    return count


def _message(item: SignedDelivery) -> aio_pika.Message:
    headers: dict[str, FieldValue] = {
        "tenant": "default", "event_type": FREEZE, "delivery_id": item.event_id,
        "received_at": datetime.now(UTC).isoformat(),
    }
    return aio_pika.Message(item.body, message_id=item.event_id, headers=headers,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def depth(queue: str = WORK_QUEUE) -> int:
    """Messages ready in ``queue`` (not counting those delivered and unacked)."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def declare_collector(name: str) -> None:
    """An uncapped, empty queue bound to every enriched event (the end-to-end probe)."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        enriched = await channel.get_exchange(topology.ENRICHED)
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(enriched, "#")
        await queue.purge()

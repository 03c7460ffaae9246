"""The floor: the worker's steps written directly on aio-pika, nothing else.

Per message: parse the envelope and validate its ``data`` with the same pydantic models,
build the same enriched event, publish it persistently with ``mandatory`` and wait for the
confirm, then ack (``message.process`` acks on success and requeues on an exception). Like
ours it consumes on one connection (prefetch from ``BENCH_PREFETCH``, default 32) and
publishes on a second, as RabbitMQ advises. No retry, dead-lettering, de-duplication,
metrics or reconnection: what a framework adds is measured against this.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from bench.apps import loop
from bench.apps.handler import HANDLER, OUTPUT_KEY, enrich
from bench.broker import URL
from bench.workload import WORK_QUEUE
from processor.broker.topology import ENRICHED
from schemas.envelope import Envelope
from schemas.webhooks import MembershipFreezeData

PREFETCH = int(os.environ.get("BENCH_PREFETCH", "32"))


def handler(exchange: AbstractExchange) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """The consumer callback, publishing through ``exchange``."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            envelope = Envelope.model_validate_json(message.body)
            data = MembershipFreezeData.model_validate(envelope.data)
            tenant = str(message.headers.get("tenant") or "default")
            key = envelope.key or ""
            output = enrich(key, tenant, envelope.event_type, envelope.event_timestamp, data)
            await exchange.publish(
                aio_pika.Message(
                    output.model_dump_json().encode(), message_id=f"{key}:{HANDLER}:{OUTPUT_KEY}",
                    headers={"tenant": tenant, "handler": HANDLER,
                             "source_event_type": envelope.event_type},
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                OUTPUT_KEY, mandatory=True, timeout=5.0,
            )

    return on_message


async def run() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consuming = await aio_pika.connect(URL)
    publishing = await aio_pika.connect(URL)
    async with consuming, publishing:
        out = await publishing.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await out.get_exchange(ENRICHED, ensure=False)
        channel = await consuming.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(WORK_QUEUE, ensure=False)
        tag = await queue.consume(handler(exchange))
        await stop.wait()
        await queue.cancel(tag)
        await asyncio.sleep(0.5)  # let in-flight messages settle before the connections close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    loop.add_option(parser)
    loop.install(parser.parse_args().loop)
    asyncio.run(run())


if __name__ == "__main__":
    main()

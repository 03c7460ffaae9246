"""The alternative users would pick: the worker's steps on FastStream, written its way.

A subscriber whose argument is the ``Envelope`` model (FastStream decodes and validates the
body), the ``data`` validated with the same schema, the same enriched event published with
``broker.publish`` (persistent, mandatory; FastStream's channels confirm by default), acked by
FastStream on return. Prefetch from ``BENCH_PREFETCH`` (default 32). Its per-message access log
is turned down to DEBUG, as ours writes no line per message either. The queue and exchange are
ours, so they are looked up, not declared (``declare=False``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from faststream import FastStream
from faststream.rabbit import (
    Channel,
    ExchangeType,
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
)

from bench.apps import loop
from bench.apps.handler import HANDLER, OUTPUT_KEY, enrich
from bench.broker import URL
from bench.workload import WORK_QUEUE
from processor.broker.topology import ENRICHED
from schemas.envelope import Envelope
from schemas.webhooks import MembershipFreezeData

PREFETCH = int(os.environ.get("BENCH_PREFETCH", "32"))

broker = RabbitBroker(URL, default_channel=Channel(prefetch_count=PREFETCH),
                      log_level=logging.DEBUG)
enriched = RabbitExchange(ENRICHED, type=ExchangeType.TOPIC, durable=True, declare=False)


@broker.subscriber(RabbitQueue(WORK_QUEUE, declare=False))
async def handle(envelope: Envelope, message: RabbitMessage) -> None:
    """Validate, enrich, publish with a confirm; FastStream acks after this returns."""
    data = MembershipFreezeData.model_validate(envelope.data)
    tenant = str(message.headers.get("tenant") or "default")
    key = envelope.key or ""
    output = enrich(key, tenant, envelope.event_type, envelope.event_timestamp, data)
    await broker.publish(
        output, exchange=enriched, routing_key=OUTPUT_KEY, persist=True, mandatory=True,
        message_id=f"{key}:{HANDLER}:{OUTPUT_KEY}", content_type="application/json",
        headers={"tenant": tenant, "handler": HANDLER, "source_event_type": envelope.event_type},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    loop.add_option(parser)
    loop.install(parser.parse_args().loop)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(FastStream(broker).run())


if __name__ == "__main__":
    main()

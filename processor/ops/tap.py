"""``zenoti-events tap``: print enriched events as they leave, for demos and debugging.

It binds a temporary, exclusive queue to ``zenoti.enriched``: it sees only what is published
while it runs, and takes nothing away from the users' own queues.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from processor.broker import topology
from processor.broker.connect import connect
from processor.broker.stream import Retention
from processor.broker.topology import ENRICHED
from processor.logs import get_logger
from processor.message import TENANT, text
from processor.settings import Settings


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("tap", help="print enriched events as they are published")
    parser.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    parser.add_argument("--timeout", type=float, default=0, help="stop after S seconds (0: never)")
    parser.add_argument("--key", default="#", help="routing-key pattern (default: everything)")
    parser.set_defaults(command=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    seen = asyncio.run(tap(settings, args.key, args.count, args.timeout))
    return 0 if seen or not args.count else 1


async def tap(settings: Settings, key: str, count: int, seconds: float) -> int:
    """Print enriched events until ``count`` were seen or ``seconds`` passed; return the count."""
    connection = await connect(settings.amqp_url.get_secret_value(), attempt_timeout=10,
                               name="tap", log=get_logger(component="tap"))
    seen = 0
    done = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal seen
        seen += 1
        print(summary(message), flush=True)
        await message.ack()
        if count and seen >= count:
            done.set()

    async with connection:
        channel = await connection.channel()
        # The exchanges (and the archive), as the other processes make them.
        await topology.declare(channel, [], archive=Retention.of(settings))
        exchange = await channel.get_exchange(ENRICHED)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=key)
        await queue.consume(on_message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds or None)
    return seen


def summary(message: AbstractIncomingMessage) -> str:
    """One line: routing key, tenant, guest name and the event id."""
    try:
        body = json.loads(message.body)
        guest = body.get("guest") or {}
        who = f"{guest.get('first_name', '?')} {guest.get('last_name', '?')}"
    except (ValueError, AttributeError):
        who = "?"
    tenant = text(message.headers, TENANT) or "?"
    return f"{message.routing_key:<34} tenant={tenant} guest={who!r} id={message.message_id}"

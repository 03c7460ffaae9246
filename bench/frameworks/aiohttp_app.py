"""Benchmark server: aiohttp.web; POST /hook publishes the raw body with a confirm, then 202.

Usage: ``python bench/frameworks/aiohttp_app.py PORT [--uvloop] [--no-publish]``.
The broker URL comes from ``BENCH_AMQP_URL`` (default: the local guest broker).
Mirrors ``starlette_app.py`` line for line where the frameworks allow it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, FieldValue
from aiohttp import web

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = "bench.frameworks"
QUEUE = "bench.frameworks.q"
QUEUE_ARGUMENTS: dict[str, FieldValue] = {"x-max-length": 10_000, "x-overflow": "drop-head"}
ROUTING_KEY = "zenoti.webhook"
CONFIRM_TIMEOUT = 5.0


class Publisher:
    """One connection, one confirming channel; ``publish`` returns after the broker's ack."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect(self._url)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare_topology(channel)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, body: bytes) -> None:
        assert self._exchange is not None, "Publisher.start() was not awaited"
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._exchange.publish(
            message, routing_key=ROUTING_KEY, mandatory=True, timeout=CONFIRM_TIMEOUT
        )


async def declare_topology(channel: AbstractChannel) -> AbstractExchange:
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    await queue.bind(exchange, routing_key="#")
    return exchange


PUBLISHER = web.AppKey("publisher", Publisher)


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        await request.app[PUBLISHER].publish(body)
    except Exception:  # any broker failure means "not accepted"
        return web.Response(status=503)
    return web.Response(status=202)


async def hook_no_publish(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202)


async def publisher_context(app: web.Application) -> AsyncIterator[None]:
    publisher = Publisher(AMQP_URL)
    await publisher.start()
    app[PUBLISHER] = publisher
    yield
    await publisher.close()


def build_app(publish: bool) -> web.Application:
    app = web.Application()
    if publish:
        app.cleanup_ctx.append(publisher_context)
    app.router.add_post("/hook", hook if publish else hook_no_publish)
    return app


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of asyncio")
    parser.add_argument("--no-publish", action="store_true", help="answer 202 without the broker")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    loop: asyncio.AbstractEventLoop | None = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        build_app(publish=not args.no_publish),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()

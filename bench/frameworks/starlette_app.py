"""Benchmark server: Starlette on uvicorn; POST /hook publishes the body with a confirm, then 202.

Usage: ``python bench/frameworks/starlette_app.py PORT [--no-publish]``.
The broker URL comes from ``BENCH_AMQP_URL`` (default: the local guest broker).
Runs one uvicorn worker on uvloop, with httptools when it is installed.
Mirrors ``aiohttp_app.py`` line for line where the frameworks allow it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator

import aio_pika
import uvicorn
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, FieldValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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


async def hook(request: Request) -> Response:
    body = await request.body()
    try:
        await request.app.state.publisher.publish(body)
    except Exception:  # any broker failure means "not accepted"
        return Response(status_code=503)
    return Response(status_code=202)


async def hook_no_publish(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


@contextlib.asynccontextmanager
async def publisher_lifespan(app: Starlette) -> AsyncIterator[None]:
    publisher = Publisher(AMQP_URL)
    await publisher.start()
    app.state.publisher = publisher
    yield
    await publisher.close()


def build_app(publish: bool) -> Starlette:
    route = Route("/hook", hook if publish else hook_no_publish, methods=["POST"])
    return Starlette(routes=[route], lifespan=publisher_lifespan if publish else None)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--no-publish", action="store_true", help="answer 202 without the broker")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uvicorn.run(
        build_app(publish=not args.no_publish),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=http,
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

"""The ingress baseline: the least an aiohttp server can do and still not lose a delivery.

``POST /webhooks/zenoti``: read the body, publish it to ``zenoti.events`` (persistent,
``mandatory``) and answer 202 once the broker confirmed, 503 otherwise. No signature, no
envelope, no de-duplication, no metrics: what our ingress adds is measured against this.
``GET /readyz`` answers 200 once the confirm channel is open.
Usage: ``python -m bench.apps.floor_ingress PORT [--loop uvloop|asyncio]``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractExchange
from aiohttp import web

from bench.apps import loop
from bench.broker import URL
from bench.workload import ROUTING_KEY
from processor.broker.topology import EVENTS

EXCHANGE = web.AppKey("exchange", AbstractExchange)


async def deliver(request: web.Request) -> web.Response:
    body = await request.read()
    message = aio_pika.Message(body, content_type="application/json",
                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    try:
        await request.app[EXCHANGE].publish(message, ROUTING_KEY, mandatory=True, timeout=5.0)
    except Exception:  # any broker failure means "not accepted"
        return web.Response(status=503)
    return web.Response(status=202)


async def ready(_: web.Request) -> web.Response:
    return web.Response(text="ready")


async def publisher(app: web.Application) -> AsyncIterator[None]:
    connection = await aio_pika.connect(URL)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    app[EXCHANGE] = await channel.get_exchange(EVENTS, ensure=False)
    yield
    await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("port", type=int)
    loop.add_option(parser)
    args = parser.parse_args()
    loop.install(args.loop)
    app = web.Application()
    app.cleanup_ctx.append(publisher)
    app.router.add_post("/webhooks/zenoti", deliver)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

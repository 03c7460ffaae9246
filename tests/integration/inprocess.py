"""A worker running in the test's own event loop, with handlers the test defines."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import aio_pika
from pydantic import BaseModel, SecretStr

from processor import Context, Event, Handler
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import Dispatcher
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.broker.publisher import ConfirmedPublisher
from processor.worker.retry import RetryPolicy
from processor.settings import RetryLimits, Settings
from processor.broker.topology import EVENTS, Binding
from processor.worker.consumer import Worker
from processor.zenoti.clients import ZenotiClients
from tests.integration.amqp import channel


class Item(BaseModel):
    n: int


class Done(BaseModel):
    key: str
    attempt: int


class Scripted:
    """Raises, per event key, the exceptions queued in ``script`` (a number: sleeps that many
    seconds instead, a handler that hangs); then succeeds."""

    name: ClassVar[str] = "scripted"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Scripted",)
    schema: ClassVar[type[BaseModel]] = Item
    script: ClassVar[dict[str, list[BaseException | float]]] = {}
    calls: ClassVar[dict[str, int]] = {}

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        Scripted.calls[event.key] = Scripted.calls.get(event.key, 0) + 1
        queued = Scripted.script.get(event.key, [])
        if queued:
            step = queued.pop(0)
            if isinstance(step, BaseException):
                raise step
            await asyncio.sleep(step)
        await ctx.publish("test.done", Done(key=event.key, attempt=event.attempt))


BINDINGS = [Binding("scripted", ("Test.Scripted",))]


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"amqp_url": SecretStr(url), "api_key": SecretStr("k"),
                              "retry_tiers": [0.3, 0.6],
                              "retry": RetryLimits(max_attempts=3, max_age_seconds=60),
                              "prefetch": 8, "shutdown_grace": 5.0, "reconnect_max_delay": 0.5}
    return Settings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def worker(settings: Settings, handlers: Sequence[Handler],
                 bindings: Sequence[Binding] = BINDINGS,
                 kinds: Sequence[type[Dispatcher]] = ()) -> AsyncIterator[Worker]:
    """A ``Worker`` running ``handlers`` in this event loop, ready; stopped after. ``kinds``
    may give a ``Dispatcher`` subclass per handler (a test's own misbehaving one)."""
    log, metrics = get_logger(test="worker"), Metrics()
    url = settings.amqp_url.get_secret_value()
    publisher = ConfirmedPublisher(url, log=log, metrics=metrics, max_delay=0.5,
                                   max_message_size=settings.broker_max_message_size)
    clients = ZenotiClients(settings, metrics)
    done = MemoryDeduplicator(60, 1000)
    classes = list(kinds) or [Dispatcher] * len(handlers)
    dispatchers = [kind(
        h, publisher=publisher, clients=clients, tenants=frozenset(settings.all_tenants()),
        retry=RetryPolicy(h.name, settings.retry_tiers, settings.retry_limits(h.name)),
        done=done, metrics=metrics, log=log, handler_timeout=settings.handler_timeout)
        for kind, h in zip(classes, handlers, strict=True)]
    running = Worker(settings, dispatchers, bindings, publisher, log)
    await publisher.start()
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    try:
        async with asyncio.timeout(10):
            while not running.ready:
                await asyncio.sleep(0.02)
        yield running
    finally:
        stop.set()
        await task
        await publisher.close()
        await clients.aclose()


async def send(url: str, event_type: str, key: str, data: dict[str, Any],
               headers: dict[str, Any] | None = None) -> None:
    body = json.dumps({"event_id": key, "event_type": event_type, "data": data}).encode()
    async with channel(url) as ch:
        await ch.set_qos(0)
        exchange = await ch.get_exchange(EVENTS)
        routing = event_type.lower()
        await exchange.publish(aio_pika.Message(
            body, message_id=key, headers={"tenant": "default", "event_type": event_type,
                                           **(headers or {})},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=routing)

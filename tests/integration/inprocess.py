"""A worker running in the test's own event loop, with handlers the test defines."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import aio_pika
from pydantic import BaseModel, SecretStr

from processor import Context, Event, Handler
from processor.broker.topology import EVENTS, Binding
from processor.logs import get_logger
from processor.settings import RetryLimits, Settings
from processor.tracing import Tracing
from processor.wiring import WorkerProcess, build_worker
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import Dispatcher
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
                              "prefetch": 8, "shutdown_grace": 5.0, "reconnect_max_delay": 0.5,
                              "worker_metrics_port": 0}  # any free port: runs may overlap
    return Settings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def worker(settings: Settings, handlers: Sequence[Handler],
                 kinds: Mapping[str, type[Dispatcher]] | None = None,
                 tracing: Tracing | None = None) -> AsyncIterator[WorkerProcess]:
    """The worker ``build_worker`` makes of ``handlers``, served in this event loop, ready;
    stopped after. ``kinds`` may map a handler's name to a ``Dispatcher`` subclass (a test's
    own misbehaving one); ``tracing`` traces it. Duplicates are remembered in memory: never in
    a Redis that outlives the run."""
    built = build_worker(settings, handlers, log=get_logger(test="worker"),
                         done=MemoryDeduplicator(60, 1000), dispatcher_types=kinds,
                         tracing=tracing)
    stop = asyncio.Event()
    task = asyncio.create_task(built.serve(stop))
    try:
        async with asyncio.timeout(10):
            while not built.ready:
                if task.done():
                    await task  # its error, rather than a wait until the timeout
                await asyncio.sleep(0.02)
        yield built
    finally:
        stop.set()
        await task


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

"""The worker: consumes every enabled handler's queue, reconnecting after any broker loss.

Each connection is a *session*: connect, declare the topology, open one channel per handler
with the configured prefetch, consume, then wait until the connection or a channel closes (or
we are told to stop). Any loss ends the session and a new one re-attaches every consumer from
scratch; this replaces aio-pika's robust connection, whose consumers can silently stop after a
reconnect. Output and retries go through a separate publishing connection, as RabbitMQ advises,
so flow control on publishes never stalls deliveries.

SIGTERM (``stop`` set): readiness turns false, consumers are cancelled, in-flight messages get
``shutdown_grace`` seconds to finish, then the connection closes and anything unacked returns
to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from structlog.typing import FilteringBoundLogger

from processor import topology
from processor.dispatch import Dispatcher
from processor.publisher import ConfirmedPublisher
from processor.settings import Settings

_Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]


class Worker:
    """Runs ``dispatchers`` until ``stop`` is set."""

    def __init__(
        self, settings: Settings, dispatchers: Sequence[Dispatcher],
        bindings: Sequence[topology.Binding], publisher: ConfirmedPublisher,
        log: FilteringBoundLogger,
    ) -> None:
        self._settings = settings
        self._dispatchers = list(dispatchers)
        self._bindings = list(bindings)
        self._publisher = publisher
        self._log = log
        self._consuming = False
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self._consuming and self._publisher.ready

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; then drain and return."""
        delay = 0.2
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.2
            except (OSError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
                self._log.warning("worker.session_failed", error=repr(exc), retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._settings.reconnect_max_delay)
        self._log.info("worker.stopped")

    async def _session(self, stop: asyncio.Event) -> None:
        connection = await aio_pika.connect(
            self._settings.amqp_url.get_secret_value(), timeout=5,
            client_properties={"connection_name": "zenoti-events worker"},
        )
        try:
            lost = asyncio.Event()
            connection.close_callbacks.add(lambda *_: lost.set())
            consumers = await self._attach(connection, lost)
            self._consuming = True
            self._log.info("worker.consuming", queues=[d.queue for d in self._dispatchers])
            await _first(stop.wait(), lost.wait())
            self._consuming = False
            if stop.is_set():
                await self._drain(consumers)
            else:
                self._log.warning("worker.connection_lost")
        finally:
            self._consuming = False
            with contextlib.suppress(Exception):
                await connection.close()

    async def _attach(
        self, connection: AbstractConnection, lost: asyncio.Event
    ) -> list[tuple[AbstractQueue, str]]:
        async with connection.channel() as setup:
            await topology.declare(
                setup, self._bindings, retry_tiers=self._settings.retry_tiers,
                delivery_limit=self._settings.delivery_limit,
            )
        consumers = []
        for dispatcher in self._dispatchers:
            channel = await connection.channel()
            channel.close_callbacks.add(lambda *_: lost.set())
            await channel.set_qos(prefetch_count=self._settings.prefetch)
            queue = await channel.get_queue(dispatcher.queue, ensure=False)
            tag = await queue.consume(self._tracked(dispatcher))
            consumers.append((queue, tag))
        return consumers

    def _tracked(self, dispatcher: Dispatcher) -> _Callback:
        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            try:
                await dispatcher(message)
            finally:
                self._in_flight.discard(task)

        return on_message

    async def _drain(self, consumers: list[tuple[AbstractQueue, str]]) -> None:
        for queue, tag in consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        pending = set(self._in_flight)
        self._log.info("worker.draining", in_flight=len(pending))
        if pending:
            _, left = await asyncio.wait(pending, timeout=self._settings.shutdown_grace)
            if left:
                self._log.warning("worker.grace_expired", unfinished=len(left))


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of the awaitables completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

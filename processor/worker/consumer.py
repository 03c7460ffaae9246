"""The worker: consumes every enabled handler's queue, reconnecting after any broker loss.

Each connection is a *session*: connect, declare (or check) the topology, open one channel per
handler with the configured prefetch, consume, then wait until the connection closes (or we are
told to stop). A lost connection ends the session and a new one re-attaches every consumer from
scratch; this replaces aio-pika's robust connection, whose consumers can silently stop after a
reconnect. The broker may also close one channel alone (a ``consumer_timeout``, a channel
error such as acking an unknown delivery tag) or cancel one consumer (its queue deleted): then
only that handler's channel is reopened, with backoff, while the others keep consuming.
Output and retries go through a separate publishing connection, as RabbitMQ advises, so flow
control on publishes never stalls deliveries.

A topology that differs from the broker's (``TopologyMismatch``) is a configuration error:
``run`` raises it at once instead of reconnecting, and the process exits. With
``declare_topology`` off a session declares nothing: it checks, passively, that its queues, its
delay queues and the exchanges it publishes to exist, and a ``ConfigError`` naming every one
missing ends the process the same way (``zenoti-events topology`` makes them).

SIGTERM (``stop`` set): readiness turns false, consumers are cancelled, in-flight messages get
``shutdown_grace`` seconds to finish, then the connection closes and anything unacked returns
to its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from structlog.typing import FilteringBoundLogger

from processor.broker import topology
from processor.broker.connect import Addresses, connect
from processor.broker.publisher import ConfirmedPublisher
from processor.broker.stream import Retention
from processor.settings import Settings
from processor.worker.dispatch import Dispatcher

_Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]
_FIRST_DELAY = 0.2
_CONNECT_WITHIN = 5.0  # per broker address
# What reopening a channel raises when the broker refuses it or the connection is going away
# (aiormq's ChannelInvalidStateError is a RuntimeError, as are aio-pika's "not ready" errors).
_REOPEN_ERRORS = (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError)


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
        # One for the life of the worker: after a node is lost, the next session tries
        # another first. A ConfigError now if AMQP_URL is malformed.
        self._addresses = Addresses(settings.amqp_url.get_secret_value())
        self._consuming = False
        self._consumers: list[_Consumer] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self._consuming and self._publisher.ready

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``; then drain and return. Raises ``ConfigError`` (a
        ``TopologyMismatch``) at once: reconnecting cannot fix it."""
        delay = _FIRST_DELAY
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = _FIRST_DELAY
            except (OSError, ConnectionError, aio_pika.exceptions.AMQPError) as exc:
                self._log.warning("worker.session_failed", error=repr(exc), retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._settings.reconnect_max_delay)
        self._log.info("worker.stopped")

    async def _session(self, stop: asyncio.Event) -> None:
        connection = await connect(self._addresses, attempt_timeout=_CONNECT_WITHIN,
                                   name="worker", log=self._log)
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        keeping: list[asyncio.Task[None]] = []
        try:
            await self._declare(connection)
            self._consumers = [self._consumer(d) for d in self._dispatchers]
            for consumer in self._consumers:
                await consumer.open(connection)
            keeping = [asyncio.create_task(c.keep(connection, lost), name=f"keep {c.queue}")
                       for c in self._consumers]
            self._consuming = True
            self._log.info("worker.consuming", queues=[c.queue for c in self._consumers])
            await _first_of(stop, lost, keeping)
            self._consuming = False
            for task in keeping:  # no channel is reopened while draining
                task.cancel()
            if stop.is_set():
                await self._drain()
            else:
                self._log.warning("worker.connection_lost")
        finally:
            self._consuming = False
            for task in keeping:
                task.cancel()
            with contextlib.suppress(Exception):
                await connection.close()

    async def _declare(self, connection: AbstractConnection) -> None:
        setup = await connection.channel()
        if self._settings.declare_topology:
            await topology.declare(
                setup, self._bindings, retry_tiers=self._settings.retry_tiers,
                delivery_limit=self._settings.delivery_limit,
                archive=Retention.of(self._settings),
            )
        else:
            await topology.check(
                setup, topology.worker_needs(self._bindings, self._settings.retry_tiers))
        await setup.close()

    def _consumer(self, dispatcher: Dispatcher) -> _Consumer:
        return _Consumer(dispatcher.queue, self._tracked(dispatcher), self._settings.prefetch,
                         self._settings.reconnect_max_delay, self._log)

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

    async def _drain(self) -> None:
        for consumer in self._consumers:
            await consumer.cancel()
        pending = set(self._in_flight)
        self._log.info("worker.draining", in_flight=len(pending))
        if pending:
            _, left = await asyncio.wait(pending, timeout=self._settings.shutdown_grace)
            if left:
                self._log.warning("worker.grace_expired", unfinished=len(left))


class _Consumer:
    """One handler's channel and consumer; reopened alone when the broker closes the channel
    or cancels the consumer, while the connection stays."""

    def __init__(
        self, queue: str, callback: _Callback, prefetch: int, max_delay: float,
        log: FilteringBoundLogger,
    ) -> None:
        self.queue = queue
        self._callback = callback
        self._prefetch = prefetch
        self._max_delay = max_delay
        self._log = log
        self._channel: AbstractChannel | None = None
        self._consuming: tuple[AbstractQueue, str] | None = None
        self._ended = asyncio.Event()
        self._reason = ""
        self._opened_at = 0.0

    async def open(self, connection: AbstractConnection) -> None:
        """Open a channel with the prefetch, and consume the queue on it."""
        self._ended = ended = asyncio.Event()
        channel = self._channel = await connection.channel()
        channel.close_callbacks.add(lambda _, exc: self._end(ended, f"channel closed: {exc!r}"))
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(
            lambda _: self._end(ended, "consumer cancelled by the broker"))
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self.queue, ensure=False)
        self._consuming = (queue, await queue.consume(self._callback))
        self._opened_at = time.monotonic()

    async def keep(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        """Reopen the channel each time it ends while the connection stays; return once the
        connection is lost (the session then starts anew). A channel that stayed up longer
        than ``max_delay`` resets the backoff."""
        delay = _FIRST_DELAY
        while True:
            await self._ended.wait()
            if lost.is_set() or connection.is_closed:
                return
            if time.monotonic() - self._opened_at > self._max_delay:
                delay = _FIRST_DELAY
            self._log.warning("worker.channel_lost", queue=self.queue, reason=self._reason,
                              retry_in=delay)
            await self._discard()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), delay)
            if lost.is_set():
                return
            delay = min(delay * 2, self._max_delay)
            try:
                await self.open(connection)
            except _REOPEN_ERRORS as exc:
                self._end(self._ended, f"reopening failed: {exc!r}")
                continue
            self._log.info("worker.channel_reopened", queue=self.queue)

    async def cancel(self) -> None:
        """Stop receiving (at shutdown): in-flight messages may still be settled."""
        if self._consuming is None or self._channel is None or self._channel.is_closed:
            return
        queue, tag = self._consuming
        with contextlib.suppress(Exception):
            await queue.cancel(tag)

    def _end(self, ended: asyncio.Event, reason: str) -> None:
        if ended is self._ended and not ended.is_set():
            self._reason = reason
            ended.set()

    async def _discard(self) -> None:
        # A cancelled consumer leaves its channel open: close it, so the new one replaces it.
        channel, self._channel, self._consuming = self._channel, None, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()


async def _first_of(
    stop: asyncio.Event, lost: asyncio.Event, keeping: list[asyncio.Task[None]]
) -> None:
    """Return when ``stop`` or ``lost`` is set, or a ``keep`` task ended; re-raise the error
    a ``keep`` task ended with (a bug must not leave its handler silently unconsumed)."""
    watched: set[asyncio.Future[Any]] = {
        asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait()), *keeping,
    }
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in watched.difference(keeping):
            waiting.cancel()
    for kept in keeping:
        failed = kept.exception() if kept.done() and not kept.cancelled() else None
        if failed is not None:
            raise failed

"""A confirmed publisher: one connection, one confirm channel, reconnecting in the background.

``publish`` returns only once the broker has confirmed the message (``basic.ack``). It raises
one of two exceptions, which callers treat differently:

- ``BrokerUnavailable``: a nack, an unroutable return, no confirm in time, the broker away.
  The same message may be taken later: the ingress answers 503, the worker retries.
- ``PublishRefused``: the message itself cannot be published (a property over AMQP's 255
  bytes, a header name over 128, headers over one frame, a body over the broker's
  ``max_message_size``, a value AMQP cannot encode, or the broker closing the channel over
  this message). Sending it again cannot help. These are checked before sending whenever
  possible, because the broker answers them by closing the channel every other publish
  shares; when it does close it, the channel is reopened at once and publishes meanwhile wait
  for it (briefly, within their budget).

It never waits for a reconnection: callers decide their own retry. A ``ConfigError`` met while
connecting (from ``on_connect``: a ``TopologyMismatch``, or an exchange missing when the process
does not declare) stops the publisher for good: ``start`` raises it if it happens on the first
attempt, and ``until_stopped`` raises it whenever it does.

Late confirms: a confirm can arrive after its timeout (during a broker alarm, say). With
``on_late_confirm``, the publish is not abandoned at the timeout: the caller gets
``BrokerUnavailable`` at once, but the confirm is still awaited for up to ``late_confirm_wait``
seconds and, if the broker acks the message, ``on_late_confirm()`` is awaited (a nack, a return,
a lost connection or the bound ending mean no call). aiormq's own ``timeout=`` cancels the
confirmation, so that path waits with its own timer instead.

Each such wait holds its message's body and about 7 KiB more (a task, aiormq's frames), so at
most ``late_confirm_max_watchers`` of them, holding ``late_confirm_max_bytes`` in all (each
counted as its body plus ``_WATCH_OVERHEAD``), are awaited at once; the gauges
``late_confirm_watchers`` and ``late_confirm_watched_bytes`` show them. Past either cap a late
publish is not watched: the caller gets ``BrokerUnavailable`` as before, the confirm is dropped
and ``on_late_confirm`` never called, even if the broker did queue the message, so a resend of
it is published again: a second copy, left to consumers' de-duplication on ``message_id``.
Such publishes are counted in ``late_confirm_unwatched``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, HeadersType
from structlog.typing import FilteringBoundLogger

from processor.broker.connect import Addresses, connect
from processor.errors import BrokerUnavailable, ConfigError, PublishRefused
from processor.metrics import Metrics
from processor.settings import BROKER_HEADER_ALLOWANCE

OnConnect = Callable[[AbstractChannel], Awaitable[None]]
OnLateConfirm = Callable[[], Awaitable[None]]
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_CLOSE_WITHIN = 5.0
_CONNECT_WITHIN = 5.0  # per broker address
_SHORT_STRING = 255  # bytes of an AMQP shortstr: names, message_id, content_type
_HEADER_NAME = 128  # bytes of a field-table key; pamqp silently truncates longer ones
# Properties travel in one frame (RabbitMQ's frame_max: 128 KiB by default); a larger one makes
# the broker close the connection (FRAME_ERROR), every publish on it lost with it.
_HEADER_BYTES = 96 * 1024
_CHANNEL_REOPEN_WAIT = 1.0
# Memory a late-confirm watcher holds besides its body (measured: about 7 KiB with the
# ingress's headers), counted against late_confirm_max_bytes.
_WATCH_OVERHEAD = 8 * 1024
# RabbitMQ's reply when a body is over max_message_size (it counts the body only).
_TOO_LARGE = re.compile(r"message size (\d+) is larger than (?:configured )?max size (\d+)")


class ConfirmedPublisher:
    """Publishes with confirms; ``ready`` is true while a confirm channel is open."""

    def __init__(
        self, url: str, *, log: FilteringBoundLogger, metrics: Metrics,
        on_connect: OnConnect | None = None, max_delay: float = 10.0, name: str = "publisher",
        max_message_size: int = 16 * 1024 * 1024, late_confirm_wait: float = 600.0,
        late_confirm_max_watchers: int = 10_000, late_confirm_max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._addresses = Addresses(url)  # a ConfigError now if AMQP_URL is malformed
        self._log = log
        self._metrics = metrics
        self._on_connect = on_connect
        self._max_delay = max_delay
        self._name = name
        self._max_body = max_message_size - BROKER_HEADER_ALLOWANCE
        self._late_confirm_wait = late_confirm_wait
        self._max_watchers = late_confirm_max_watchers
        self._max_watched_bytes = late_confirm_max_bytes
        self._watched_bytes = 0
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._open = asyncio.Event()  # set while self._channel is usable
        self._changed = asyncio.Event()  # the channel or the connection closed
        self._closed_by: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._fatal: ConfigError | None = None
        self._stopped = asyncio.Event()
        self._late: set[asyncio.Task[None]] = set()

    @property
    def ready(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    @property
    def fatal(self) -> ConfigError | None:
        """The configuration error that stopped the publisher for good, if one did."""
        return self._fatal

    async def start(self, wait: float = 5.0) -> None:
        """Start connecting in the background; wait up to ``wait`` s for the first attempt.
        Raises the ``ConfigError`` that attempt met (see ``until_stopped`` for later ones)."""
        self._task = asyncio.create_task(self._keep_connected(), name=self._name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), wait)
        if self._fatal is not None:
            raise self._fatal

    async def until_stopped(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set; raise the ``ConfigError`` that stops the publisher
        first, if one does (the caller's process should then exit)."""
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._stopped.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if self._fatal is not None and not stop.is_set():
            raise self._fatal

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()
        for watch in list(self._late):  # unconfirmable once the connection is closed
            watch.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
        headers: HeadersType | None = None, confirm_timeout: float = 5.0,
        content_type: str = "application/json", on_late_confirm: OnLateConfirm | None = None,
    ) -> None:
        """Publish persistently with ``mandatory`` and wait for the broker's confirm (see the
        module for the exceptions, and for ``on_late_confirm``)."""
        self._check(exchange, routing_key, body, message_id, content_type, headers)
        # The properties aio_pika.Message would build, without building the Message: its
        # per-attribute checks cost about 10 us a message (profiled under load).
        properties = aiormq.spec.Basic.Properties(
            content_type=content_type, delivery_mode=_PERSISTENT, headers=headers or {},
            message_id=message_id, priority=0,
        )
        try:
            channel, waited = await self._underlay(confirm_timeout)
            budget = confirm_timeout - waited
            publishing = channel.basic_publish(
                body, exchange=exchange, routing_key=routing_key, properties=properties,
                mandatory=True, timeout=None if on_late_confirm else budget,
            )
            if on_late_confirm is None:
                await publishing
            else:
                await self._confirmed_or_watched(publishing, budget, on_late_confirm, message_id,
                                                 len(body) + _WATCH_OVERHEAD)
        except (BrokerUnavailable, PublishRefused):
            raise
        except TimeoutError as exc:
            raise BrokerUnavailable(f"no confirm within {confirm_timeout:g} s") from exc
        except (TypeError, ValueError) as exc:  # aiormq could not encode it: nothing was sent
            raise PublishRefused(f"the message cannot be encoded in AMQP: {exc}") from exc
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            if _refused_for(exc, body):
                raise PublishRefused(f"the broker refused the message: {_reply(exc)}") from exc
            raise BrokerUnavailable(f"broker closed the channel: {_reply(exc)}") from exc
        except Exception as exc:  # nack, return, closed channel, connection reset
            raise BrokerUnavailable(f"broker did not take it: {type(exc).__name__}") from exc

    def _check(
        self, exchange: str, routing_key: str, body: bytes, message_id: str, content_type: str,
        headers: HeadersType | None,
    ) -> None:
        """Raise ``PublishRefused`` for what the broker or aiormq would refuse: it is cheaper
        to say so here than to lose the channel every other publish shares."""
        for what, value in (("exchange", exchange), ("routing key", routing_key),
                            ("message_id", message_id), ("content_type", content_type)):
            if len(value) > _SHORT_STRING // 4 and len(value.encode()) > _SHORT_STRING:
                raise PublishRefused(f"{what} of {len(value.encode())} bytes is over AMQP's "
                                     f"{_SHORT_STRING}: {value[:40]!r}...")
        size = 0
        for name, field in (headers or {}).items():
            if len(name.encode()) > _HEADER_NAME:
                raise PublishRefused(f"header name over {_HEADER_NAME} bytes: {name[:40]!r}...")
            # At most 4 bytes a character: the exact count only when this bound may be over.
            size += len(name) + (4 * len(field) if isinstance(field, str) else
                                 len(field) if isinstance(field, bytes) else 16) + 8
        if size > _HEADER_BYTES:
            size = sum(len(k.encode()) + len(str(v).encode()) + 8
                       for k, v in (headers or {}).items())
            if size > _HEADER_BYTES:
                raise PublishRefused(f"headers of about {size} bytes are over the "
                                     f"{_HEADER_BYTES} that fit one AMQP frame")
        if len(body) > self._max_body:
            raise PublishRefused(
                f"a body of {len(body)} bytes is over the broker's max_message_size less "
                f"{BROKER_HEADER_ALLOWANCE} bytes for properties ({self._max_body} bytes)")

    async def _confirmed_or_watched(
        self, publishing: Awaitable[Any], budget: float, on_late_confirm: OnLateConfirm,
        message_id: str, size: int,
    ) -> None:
        """Await the confirm for ``budget`` s; past it (or if the caller is cancelled), keep
        awaiting it in the background when under the caps, and raise ``BrokerUnavailable`` now."""
        sending = asyncio.ensure_future(publishing)
        try:
            done, _ = await asyncio.wait({sending}, timeout=budget)
        except asyncio.CancelledError:
            self._watch(sending, on_late_confirm, message_id, size)
            raise
        if not done:
            self._watch(sending, on_late_confirm, message_id, size)
            raise BrokerUnavailable(f"no confirm within {budget:g} s")
        sending.result()

    def _watch(
        self, sending: asyncio.Future[Any], on_late_confirm: OnLateConfirm, message_id: str,
        size: int,
    ) -> None:
        if (len(self._late) >= self._max_watchers
                or self._watched_bytes + size > self._max_watched_bytes):
            sending.cancel()  # drops the confirm, and with it the body
            self._metrics.late_confirm_unwatched.inc()
            self._log.info("publish.late_confirm_unwatched", component=self._name,
                           message_id=message_id, watchers=len(self._late),
                           watched_bytes=self._watched_bytes)
            return
        watch = asyncio.create_task(self._late_confirm(sending, on_late_confirm, message_id))
        self._late.add(watch)
        self._watched_bytes += size
        self._metrics.late_confirm_watchers.inc()
        self._metrics.late_confirm_watched_bytes.inc(size)

        def unwatch(_: asyncio.Task[None]) -> None:
            self._late.discard(watch)
            self._watched_bytes -= size
            self._metrics.late_confirm_watchers.dec()
            self._metrics.late_confirm_watched_bytes.dec(size)

        watch.add_done_callback(unwatch)

    async def _late_confirm(
        self, sending: asyncio.Future[Any], on_late_confirm: OnLateConfirm, message_id: str
    ) -> None:
        try:
            async with asyncio.timeout(self._late_confirm_wait):
                await sending  # cancelled with it when the bound ends
        except Exception as exc:  # nack, return, connection lost, bound reached
            self._log.info("publish.never_confirmed", component=self._name,
                           message_id=message_id, error=repr(exc))
            return
        self._log.info("publish.confirmed_late", component=self._name, message_id=message_id)
        try:
            await on_late_confirm()
        except Exception as exc:
            self._log.warning("publish.late_confirm_callback_failed", component=self._name,
                              message_id=message_id, error=repr(exc))

    async def _underlay(self, budget: float) -> tuple[aiormq.abc.AbstractChannel, float]:
        """The open confirm channel, and the seconds spent waiting for it: while a channel the
        broker closed is reopened on a live connection (milliseconds), wait within ``budget``."""
        channel = self._channel
        waited = 0.0
        if channel is None or channel.is_closed:
            started = time.monotonic()
            connection = self._connection
            if connection is None or connection.is_closed or self._stopped.is_set():
                raise BrokerUnavailable("not connected to the broker")
            if channel is not None:  # closed before aio-pika's close callbacks have run
                self._open.clear()
            try:
                await asyncio.wait_for(self._open.wait(), min(budget, _CHANNEL_REOPEN_WAIT))
            except TimeoutError:
                raise BrokerUnavailable("not connected to the broker") from None
            channel = self._channel
            if channel is None or channel.is_closed:
                raise BrokerUnavailable("not connected to the broker")
            waited = time.monotonic() - started
        return await channel.get_underlay_channel(), waited

    async def _keep_connected(self) -> None:
        delay = 0.2
        try:
            while True:
                try:
                    await self._connect()
                    delay = 0.2
                    await self._keep_channel()
                except ConfigError as exc:  # retrying cannot help: stop, and say so
                    self._fatal = exc
                    return
                except Exception as exc:  # anything else the broker or network does: reconnect
                    self._log.warning("broker.unavailable", component=self._name,
                                      error=repr(exc))
                finally:
                    self._first_attempt.set()
                    await self._drop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
        finally:
            self._stopped.set()

    async def _connect(self) -> None:
        self._changed.clear()
        self._connection = await connect(self._addresses, attempt_timeout=_CONNECT_WITHIN,
                                         name=self._name, log=self._log)
        self._connection.close_callbacks.add(lambda *_: self._changed.set())
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        if self._on_connect:
            await self._on_connect(channel)
        self._use(channel)
        self._metrics.broker_connected.set(1)
        self._first_attempt.set()
        self._log.info("broker.connected", component=self._name)

    async def _keep_channel(self) -> None:
        """Return once the connection is lost. A channel the broker closed alone (over a
        message it refused) is reopened at once: the others must not wait for a reconnect."""
        assert self._connection is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._connection.is_closed:
                self._log.warning("broker.connection_lost", component=self._name)
                return
            if self._channel is not None and not self._channel.is_closed:
                continue
            self._log.warning("broker.channel_closed", component=self._name,
                              error=repr(self._closed_by))
            try:
                channel = await self._connection.channel(publisher_confirms=True,
                                                         on_return_raises=True)
            except Exception as exc:  # the connection is going too: start over
                raise ConnectionError(f"reopening the channel failed: {exc!r}") from exc
            self._use(channel)

    def _use(self, channel: AbstractChannel) -> None:
        def closed(sender: object, exc: BaseException | None = None) -> None:
            if sender is self._channel:
                self._open.clear()
                self._closed_by = exc
                self._changed.set()

        channel.close_callbacks.add(closed)
        self._channel = channel
        self._open.set()

    async def _drop(self) -> None:
        self._metrics.broker_connected.set(0)
        self._open.clear()
        self._channel = None
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_WITHIN):  # a broker that never answers
                    await connection.close()


def _refused_for(exc: aiormq.exceptions.ChannelPreconditionFailed, body: bytes) -> bool:
    """Whether the broker closed the channel over *this* message. Every publish in flight
    gets the same error; when the reply names the size at fault, only a body of that size
    (or over the limit) is the culprit: the others were merely unconfirmed."""
    too_large = _TOO_LARGE.search(_reply(exc))
    if too_large is None:
        return True  # a property the broker rejects: this API cannot send one on purpose
    size, limit = int(too_large[1]), int(too_large[2])
    return len(body) == size or len(body) > limit


def _reply(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else repr(exc)

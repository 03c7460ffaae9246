"""A confirm that arrives after the caller was told ``BrokerUnavailable`` is reported through
``on_late_confirm``, so a 503 answered for a message the broker did queue can be made good.

Lateness is made honestly without alarming the shared broker: a confirm timeout of 1 us
expires before any confirm can come back, and the real confirm arrives afterwards; or a proxy
between the publisher and the broker holds what the broker sends for as long as a test needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from processor.broker.publisher import _WATCH_OVERHEAD, ConfirmedPublisher
from processor.errors import BrokerUnavailable
from processor.logs import get_logger
from processor.metrics import Metrics
from tests.conftest import Broker
from tests.integration.amqp import channel, depth

pytestmark = pytest.mark.integration

QUEUE = "test.publisher.late"
INSTANT = 0.000001
HELD = 10 + _WATCH_OVERHEAD  # the memory a watcher of a 10-byte body is counted for


class HoldingProxy:
    """A TCP proxy to the broker that, while ``held`` is clear, keeps what the broker sends
    (confirms included) from reaching the client; what the client sends always passes."""

    def __init__(self, url: str) -> None:
        self._target = urlsplit(url)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        credentials = self._target.netloc.rpartition("@")[0]
        at = f"{credentials}@" if credentials else ""
        return urlunsplit(self._target._replace(netloc=f"{at}127.0.0.1:{port}"))

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._target.hostname or "127.0.0.1", self._target.port or 5672
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        for pump in (self._pump(reader, upstream_writer, None),
                     self._pump(upstream_reader, writer, self.flowing)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    gate: asyncio.Event | None) -> None:
        try:
            while chunk := await source.read(65536):
                if gate is not None:
                    await gate.wait()
                sink.write(chunk)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


@pytest.fixture
async def publisher(broker: Broker) -> AsyncIterator[ConfirmedPublisher]:
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)
        await ch.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    publishing = ConfirmedPublisher(broker.url, log=get_logger(test="late"), metrics=Metrics(),
                                    late_confirm_wait=10.0)
    await publishing.start()
    yield publishing
    await publishing.close()
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)


class Calls:
    def __init__(self) -> None:
        self.made = asyncio.Event()
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1
        self.made.set()


async def test_a_confirm_after_the_timeout_calls_on_late_confirm(
    publisher: ConfirmedPublisher, broker: Broker,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable, match="no confirm within"):
        await publisher.publish("", QUEUE, b"late", message_id="k1", confirm_timeout=INSTANT,
                                on_late_confirm=late)
    assert late.count == 0, "called before the caller was answered"
    async with asyncio.timeout(10):
        await late.made.wait()
    assert late.count == 1
    assert await depth(broker.url, QUEUE) == 1


async def test_a_message_the_broker_returns_is_never_reported_as_confirmed_late(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable):
        await publisher.publish("", "no.such.queue", b"{}", message_id="k2",
                                confirm_timeout=INSTANT, on_late_confirm=late)
    await asyncio.sleep(1.0)  # the return (then the ack) come back within milliseconds
    assert late.count == 0


async def test_a_confirm_in_time_does_not_call_on_late_confirm(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    await publisher.publish("", QUEUE, b"{}", message_id="k3", on_late_confirm=late)
    await asyncio.sleep(0.2)
    assert late.count == 0


async def test_closing_the_publisher_while_a_late_confirm_is_awaited_is_clean(
    publisher: ConfirmedPublisher,
) -> None:
    late = Calls()
    with pytest.raises(BrokerUnavailable):
        await publisher.publish("", QUEUE, b"{}", message_id="k4", confirm_timeout=INSTANT,
                                on_late_confirm=late)
    async with asyncio.timeout(5):
        await publisher.close()  # whether the confirm came back first or not
    assert late.count <= 1


@contextlib.asynccontextmanager
async def capped(broker: Broker, watchers: int, held: int) -> AsyncIterator[
    tuple[ConfirmedPublisher, HoldingProxy, Metrics]
]:
    """A publisher with late-confirm caps, connected through a ``HoldingProxy``."""
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)
        await ch.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    metrics = Metrics()
    async with HoldingProxy(broker.url) as proxy:
        publishing = ConfirmedPublisher(proxy.url, log=get_logger(test="late-cap"),
                                        metrics=metrics, late_confirm_wait=10.0,
                                        late_confirm_max_watchers=watchers,
                                        late_confirm_max_bytes=held)
        await publishing.start()
        try:
            yield publishing, proxy, metrics
        finally:
            proxy.flowing.set()
            await publishing.close()
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


@pytest.mark.parametrize(("watchers", "held"), [(2, 1000 * HELD), (1000, 2 * HELD + 5)],
                         ids=["by-count", "by-bytes"])
async def test_past_the_caps_late_publishes_are_not_watched_and_the_gauges_show_the_watched(
    broker: Broker, watchers: int, held: int,
) -> None:
    late = Calls()
    async with capped(broker, watchers, held) as (publisher, proxy, metrics):
        assert publisher.ready
        proxy.flowing.clear()  # no confirm reaches the publisher from here on
        for n in range(4):  # bodies of 10 bytes: two fit under either cap
            with pytest.raises(BrokerUnavailable, match="no confirm within"):
                await publisher.publish("", QUEUE, b"0123456789", message_id=f"cap{n}",
                                        confirm_timeout=0.2, on_late_confirm=late)
        assert sample(metrics, "zenoti_events_late_confirm_watchers") == 2
        assert sample(metrics, "zenoti_events_late_confirm_watched_bytes") == 2 * HELD
        assert sample(metrics, "zenoti_events_late_confirm_unwatched_total") == 2
        proxy.flowing.set()  # the broker's confirms of all four come through
        async with asyncio.timeout(10):
            while sample(metrics, "zenoti_events_late_confirm_watchers"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a call for an unwatched publish would come by now
        assert late.count == 2, "only the watched publishes are reported confirmed late"
        assert sample(metrics, "zenoti_events_late_confirm_watched_bytes") == 0
        # The unwatched were queued all the same: a resend of them is a second copy.
        assert await depth(broker.url, QUEUE) == 4

"""Slow clients never hold the ingress: headers and bodies have deadlines, connections a cap,
and shutdown a grace. Real sockets against a real ingress (``run_ingress`` in this event loop,
or the ``ingress`` process for SIGTERM); small bounds so that the file runs in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from processor.ingress.signature import sign
from processor.settings import Settings
from processor.wiring import run_ingress
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, reset
from tests.integration.processes import Stack, free_port

pytestmark = pytest.mark.integration

SECRET = "slow-clients-secret"
SLACK = 1.5  # seconds a cut-off may come late on a busy machine; the failures are far later
FAST = 3.0  # a normal delivery's answer, slow clients or not (blocked, it waits for their cut-off)
LINGER = 1.0  # an answered slow body may drip this long more (the server's lingering_time)


def headers_of(content_length: int) -> bytes:
    return (f"POST /webhooks/zenoti HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json"
            f"\r\nContent-Length: {content_length}\r\n\r\n").encode()


def slow_headers() -> Iterable[int]:
    """A request line and headers that never end: one more header byte each drip."""
    return itertools.chain(b"POST /webhooks/zenoti HTTP/1.1\r\nHost: ingress\r\nX-Slow: ",
                           itertools.repeat(ord("a")))


@dataclass
class Cut:
    """How a slow client ended, in seconds from the end of what it sent at once."""

    answer: bytes = b""
    answered: float | None = None  # first byte of an answer
    closed: float | None = None  # end of file or reset

    @property
    def status(self) -> int | None:
        return int(self.answer.split(b" ", 2)[1]) if self.answer.startswith(b"HTTP/") else None


async def trickle(port: int, head: bytes, drip: Iterable[int], *, every: float = 0.2,
                  limit: float = 10.0) -> Cut:
    """Connect, send ``head`` at once, then one byte of ``drip`` every ``every`` seconds while
    reading whatever comes; return once the server closes the connection or ``limit`` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    cut = Cut()
    writer.write(head)
    started = time.monotonic()

    async def read() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if cut.answered is None:
                    cut.answered = time.monotonic() - started
                cut.answer += chunk
        cut.closed = time.monotonic() - started

    reading = asyncio.create_task(read())
    try:
        for byte in drip:
            if reading.done() or time.monotonic() - started > limit:
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait({reading}, timeout=every)
        await asyncio.wait({reading}, timeout=max(0.0, limit - (time.monotonic() - started)))
    finally:
        reading.cancel()
        writer.close()
    return cut


def settings_for(url: str, **extra: Any) -> Settings:
    return Settings(amqp_url=SecretStr(url), webhook_secrets=[SecretStr(SECRET)],
                    ingress_host="127.0.0.1", ingress_port=free_port(),
                    ingress_drain_seconds=0.0, reconnect_max_delay=0.5, **extra)


def session() -> aiohttp.ClientSession:
    # No pooled keep-alive connection: each request's connection closes with its answer, so
    # that the tests' own connections are not what fills the server.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def deliver(port: int) -> tuple[int, float]:
    """POST one signed delivery; its status and how long the answer took."""
    body = json.dumps({"id": uuid.uuid4().hex, "event_id": uuid.uuid4().hex,
                       "event_type": "Guest.Membership.Freeze",
                       "event_timestamp": "2026-11-21T10:00:00Z",
                       "data": {"user_membership_id": "u1"}}).encode()
    headers = {"zenoti-webhook-signature": sign(SECRET, body),
               "Content-Type": "application/json"}
    started = time.monotonic()
    async with session() as http, http.post(f"http://127.0.0.1:{port}/webhooks/zenoti",
                                            data=body, headers=headers) as response:
        await response.read()
        return response.status, time.monotonic() - started


async def page(port: int, path: str) -> str:
    """GET ``path``, which must answer 200; its text."""
    async with session() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        assert response.status == 200, path
        return await response.text()


@contextlib.asynccontextmanager
async def ingress(broker: Broker, **extra: object) -> AsyncIterator[int]:
    """``run_ingress`` in this event loop, ready; yields its port and stops it after."""
    await reset(broker.url, TEST_BINDINGS)
    settings = settings_for(broker.url, **extra)
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingress(settings, stop))
    url = f"http://127.0.0.1:{settings.ingress_port}/readyz"
    async with asyncio.timeout(15), session() as http:
        while True:
            assert not task.done(), "the ingress ended before it was ready"
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.05)
    try:
        yield settings.ingress_port
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


async def test_a_client_slow_with_its_headers_is_answered_408_and_cut_off_in_time(
    broker: Broker,
) -> None:
    async with ingress(broker, ingress_header_timeout=0.5) as port:
        cut = await trickle(port, b"", slow_headers(), limit=0.5 + SLACK + 2)
        metrics = await page(port, "/metrics")
    assert cut.closed is not None and cut.closed <= 0.5 + SLACK, f"held: {cut}"
    # The 408 may be lost to the reset that the client's next byte draws; never another answer.
    assert cut.status in (None, 408), cut
    assert "zenoti_events_ingress_header_timeouts_total 1.0" in metrics


async def test_the_next_request_on_a_kept_alive_connection_has_the_same_header_deadline(
    broker: Broker,
) -> None:
    async with ingress(broker, ingress_header_timeout=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(headers_of(0))  # an empty body: Zenoti's test trigger, answered 200
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split()[0]))
            # Idle is not slow: an idle kept-alive connection outlives the header deadline.
            await asyncio.sleep(0.5 + 0.5)
            started = time.monotonic()
            for byte in slow_headers():
                writer.write(bytes([byte]))
                try:
                    await writer.drain()
                    if await asyncio.wait_for(reader.read(65536), 0.2) == b"":
                        break
                except TimeoutError:
                    if time.monotonic() - started > 0.5 + SLACK + 2:
                        break
                except ConnectionError:
                    break
            held = time.monotonic() - started
        finally:
            writer.close()
    assert held <= 0.5 + SLACK, f"the next request's headers were taken for {held:.1f} s"


async def test_slow_bodies_are_cut_off_in_time_and_never_delay_a_normal_delivery(
    broker: Broker,
) -> None:
    body_timeout, slow = 4.0, 50  # over FAST: a delivery queued behind slow bodies fails
    async with ingress(broker, ingress_body_timeout=body_timeout) as port:
        slowpokes = [asyncio.create_task(trickle(port, headers_of(1000), itertools.repeat(ord(" ")),
                                                 limit=body_timeout + LINGER + SLACK + 2))
                     for _ in range(slow)]
        await asyncio.sleep(0.3)  # all of them connected and inside their bodies
        status, took = await deliver(port)
        cuts = await asyncio.gather(*slowpokes)
    assert status == 202
    assert took <= FAST, f"a normal delivery took {took:.2f} s among {slow} slow bodies"
    for cut in cuts:
        assert cut.answered is not None and cut.answered <= body_timeout + SLACK, cut
        assert cut.status == 408, cut
        # After its 408 the connection is kept only while aiohttp drops the rest (LINGER).
        assert cut.closed is not None and cut.closed <= body_timeout + LINGER + SLACK, cut


async def test_connections_over_the_cap_are_refused_at_once_and_a_freed_slot_serves_again(
    broker: Broker,
) -> None:
    cap = 3
    async with ingress(broker, ingress_max_connections=cap, ingress_header_timeout=30) as port:
        await asyncio.sleep(0.2)  # the readiness check's connection is gone
        holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
        try:
            over = await trickle(port, headers_of(0), b"", limit=SLACK + 2)
            assert over.closed is not None and over.closed <= SLACK, f"held: {over}"
            assert over.status in (None, 503), over  # refused, never served
            for reader, _ in holders:  # the first ``cap`` were never refused
                assert not reader.at_eof()
            _, freed = holders.pop()
            freed.close()
            await asyncio.sleep(0.2)
            assert (await deliver(port))[0] == 202
            await asyncio.sleep(0.1)  # that delivery's connection is gone
            metrics = await page(port, "/metrics")
        finally:
            for _, writer in holders:
                writer.close()
    assert "zenoti_events_ingress_connections_refused_total 1.0" in metrics
    assert f"zenoti_events_ingress_connections_open {cap}.0" in metrics  # 2 held + this one


async def test_probes_and_metrics_are_answered_with_the_cap_reached_and_a_webhook_gets_503(
    broker: Broker,
) -> None:
    cap = 3
    async with ingress(broker, ingress_max_connections=cap, ingress_header_timeout=30) as port:
        await asyncio.sleep(0.2)  # the readiness check's connection is gone
        # Slow clients that have sent nothing yet: the cap is theirs for the next 30 s.
        holders = [await asyncio.open_connection("127.0.0.1", port) for _ in range(cap)]
        try:
            async with session() as http:
                for path in ("/healthz", "/readyz"):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as probe:
                        assert probe.status == 200, path
            status, took = await deliver(port)
            metrics = await page(port, "/metrics")
            for reader, _ in holders:
                assert not reader.at_eof()
        finally:
            for _, writer in holders:
                writer.close()
    assert status == 503 and took <= FAST
    assert "zenoti_events_ingress_connections_refused_total 1.0" in metrics  # the webhook
    assert f"zenoti_events_ingress_connections_open {cap}.0" in metrics
    assert "zenoti_events_ingress_probe_connections_open 1.0" in metrics  # this page's


@dataclass
class TunedStack(Stack):
    """The real processes, with extra settings in their environment."""

    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.extra}


async def test_sigterm_with_slow_clients_connected_exits_within_the_grace(broker: Broker) -> None:
    drain, grace = 0.2, 1.0
    await reset(broker.url, TEST_BINDINGS)
    # The body deadline is far away: only the shutdown grace can end these requests.
    running = TunedStack(broker.url, extra={
        "ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS": str(drain),
        "ZENOTI_EVENTS_INGRESS_SHUTDOWN_GRACE": str(grace),
        "ZENOTI_EVENTS_INGRESS_BODY_TIMEOUT": "60",
    })
    try:
        process = running.ingress()
        slowpokes = [asyncio.create_task(trickle(running.ingress_port, headers_of(1000),
                                                 itertools.repeat(ord(" ")), limit=30))
                     for _ in range(5)]
        await asyncio.sleep(0.5)
        assert not any(s.done() for s in slowpokes), "a slow client was cut off before SIGTERM"
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain + grace + SLACK + 5):
                while process.poll() is None:
                    await asyncio.sleep(0.05)
        took = time.monotonic() - started
        assert process.poll() == 0, f"still running {took:.1f} s after SIGTERM"
        assert took <= drain + grace + SLACK, f"exit took {took:.1f} s after SIGTERM"
        for slowpoke in slowpokes:
            assert (await slowpoke).closed is not None
    finally:
        running.stop()


async def test_a_compressed_body_is_never_inflated(broker: Broker) -> None:
    # Inflating before the signature is checked would let anyone spend our CPU (a gzip
    # bomb). The bytes are checked as sent: signed as sent, they are kept (parked, since
    # they are not the JSON envelope), and a bomb costs what it weighs.
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    headers = {"Content-Encoding": "gzip", "zenoti-webhook-signature": sign(SECRET, bomb)}
    async with ingress(broker, max_body_bytes=2 << 20) as port:
        started = time.monotonic()
        async with session() as http, http.post(
                f"http://127.0.0.1:{port}/webhooks/zenoti", data=bomb,
                headers=headers) as response:
            answer = await response.json()
            assert (response.status, answer["status"]) == (202, "parked"), answer
        assert time.monotonic() - started < 5

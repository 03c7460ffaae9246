"""Over the connection cap, a small reserve of connections serves the probe paths alone: the
kubelet and Prometheus are answered while clients fill the cap, and nothing else gets in.
A real server on a local port, an app that counts what reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from processor.metrics import Metrics
from processor.serving import probes

Held = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


class App:
    """The probe routes and one webhook route, counting the webhook requests it is given."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.webhooks = 0
        self.app = web.Application()
        probes.add_routes(self.app, self.metrics, lambda: True)
        self.app.router.add_post("/webhooks/zenoti", self._webhook)

    async def _webhook(self, _: web.Request) -> web.Response:
        self.webhooks += 1
        return web.Response(status=202)

    def sample(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(name)


@contextlib.asynccontextmanager
async def serving(app: App, cap: int, reserve: int) -> AsyncIterator[int]:
    limits = probes.Limits(max_connections=cap, probe_connections=reserve, header_timeout=30)
    server = await probes.serve(app.app, "127.0.0.1", 0, limits, app.metrics)
    try:
        yield server.port
    finally:
        await server.cleanup()


@contextlib.asynccontextmanager
async def holding(port: int, n: int) -> AsyncIterator[Held]:
    """``n`` connections that send nothing (slow clients within their header deadline)."""
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    await asyncio.sleep(0.05)  # the server has admitted them
    try:
        yield held
    finally:
        for _, writer in held:
            writer.close()


def request(method: str, path: str, body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: ingress\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One answer's status and head (its body read and dropped)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), head


async def ask(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bool]:
    """One request on a connection of its own; the status, and whether the server closed the
    connection after the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(method, path, body))
        status, _ = await answer(reader)
        return status, await closed(reader)
    finally:
        writer.close()


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.5) == b""
    except TimeoutError:
        return False


async def test_with_the_cap_reached_probes_are_answered_and_a_webhook_is_refused_503() -> None:
    app = App()
    async with serving(app, cap=2, reserve=2) as port, holding(port, 2) as held:
        assert await ask(port, "GET", "/healthz") == (200, False)
        assert await ask(port, "GET", "/readyz") == (200, False)
        assert await ask(port, "POST", "/webhooks/zenoti", b"{}") == (503, True)
        assert all(not reader.at_eof() for reader, _ in held)
    assert app.webhooks == 0, "the app saw a request admitted for probes alone"
    assert app.sample("zenoti_events_ingress_connections_refused_total") == 1


async def test_a_kept_alive_connection_in_the_reserve_serves_probes_and_refuses_the_rest() -> None:
    app = App()
    async with serving(app, cap=1, reserve=1) as port, holding(port, 1):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request("GET", "/metrics"))
            status, head = await answer(reader)
            assert status == 200 and b"connection: close" not in head.lower()
            assert app.sample("zenoti_events_ingress_probe_connections_open") == 1
            assert app.sample("zenoti_events_ingress_connections_open") == 1
            writer.write(request("POST", "/webhooks/zenoti", b"{}"))
            status, head = await answer(reader)
            assert status == 503 and b"retry-after: 1" in head.lower()
            assert await closed(reader)
        finally:
            writer.close()
    assert app.webhooks == 0


async def test_with_the_reserve_full_too_even_a_probe_is_refused_at_once() -> None:
    app = App()
    async with serving(app, cap=1, reserve=1) as port, holding(port, 2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:  # refused before it sends a byte: the server does not wait for its path
            status, _ = await answer(reader)
            assert status == 503
            assert await closed(reader)
        finally:
            writer.close()
    assert app.sample("zenoti_events_ingress_connections_refused_total") == 1


async def test_a_freed_slot_under_the_cap_serves_webhooks_again() -> None:
    app = App()
    async with serving(app, cap=1, reserve=1) as port:
        async with holding(port, 1):
            assert (await ask(port, "POST", "/webhooks/zenoti", b"{}"))[0] == 503
        await asyncio.sleep(0.05)  # the held connection is gone
        assert await ask(port, "POST", "/webhooks/zenoti", b"{}") == (202, False)
        await asyncio.sleep(0.05)
        assert app.sample("zenoti_events_ingress_probe_connections_open") == 0
        assert app.sample("zenoti_events_ingress_connections_open") == 0
    assert app.webhooks == 1

"""A Zenoti call ends within its deadline in all, against a real server that answers slowly:
headers at once, then one byte of body a second (each read is quick, the whole never is)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from processor.errors import ZenotiUnavailable
from processor.metrics import Metrics
from processor.settings import Settings
from processor.zenoti.clients import ZenotiClients

SLACK = 3.0  # far below the 31 s the dripping body takes; a loaded machine is slow


class Dripping:
    """An HTTP server on 127.0.0.1 that drips its JSON body one byte a second."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = b'{"id": "g1", "center_id": "c1"}'
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Content-Length": str(len(body))})
        await response.prepare(request)
        for byte in body:
            await response.write(bytes([byte]))
            await asyncio.sleep(1.0)
        return response


@pytest.fixture
async def dripping() -> AsyncIterator[Dripping]:
    server = Dripping()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def settings_for(server: Dripping, **overrides: Any) -> Settings:
    return Settings(**{
        "zenoti_api_url": f"http://127.0.0.1:{server.port}", "api_key": SecretStr("k"),
        "zenoti_api_timeout": 5.0,  # longer than the gap between bytes: never fires here
        "zenoti_call_deadline": 1.5, "api_retries": 0, **overrides,
    })


async def timed_call(settings: Settings) -> float:
    clients = ZenotiClients(settings, Metrics())
    started = time.monotonic()
    try:
        with pytest.raises(ZenotiUnavailable, match=r"within 1\.5 s"):
            await clients.for_tenant("default").get_guest("g1")
        return time.monotonic() - started
    finally:
        await clients.aclose()


async def test_a_call_to_a_dripping_server_ends_at_its_deadline_as_zenoti_unavailable(
    dripping: Dripping,
) -> None:
    elapsed = await timed_call(settings_for(dripping))
    assert 1.5 <= elapsed < 1.5 + SLACK, f"the call took {elapsed:.2f} s for a 1.5 s deadline"
    assert dripping.requests == 1


async def test_in_place_retries_of_a_dripping_server_are_bounded_by_their_deadlines(
    dripping: Dripping,
) -> None:
    elapsed = await timed_call(settings_for(dripping, api_retries=2, api_retry_backoff=0.01))
    assert elapsed < 3 * 1.5 + SLACK, f"3 attempts took {elapsed:.2f} s for 1.5 s deadlines"
    assert dripping.requests == 3

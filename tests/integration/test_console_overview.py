"""The console's overview against the real broker, Redis and a live /metrics: queue depths,
parked by reason, in flight and the spool, two tenants' API budget and snapshots, and a dead
metrics URL shown "unavailable" (the page answers 200). (HTTP client, not a browser.)"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor import logs
from processor.broker.topology import queue_name
from processor.console.app import make_app
from processor.console.overview import SCRAPER
from processor.console.scrape import Scraper
from processor.errors import BudgetExhausted
from processor.settings import Settings, TenantSettings
from processor.zenoti.shared_budget import RedisBudget, budget_key
from processor.zenoti.snapshot_store import Meta, RedisSnapshotStore
from tests.conftest import Broker
from tests.integration.amqp import channel
from tests.integration.test_parking import HANDLER, park, prepare
from tests.unit.test_dedupe import redis_url

pytestmark = pytest.mark.integration

DEAD = "http://127.0.0.1:9/metrics"
WINDOW = 3600.0  # an hour a window: no token refills between the calls and the page
METRICS = """# TYPE zenoti_events_messages counter
zenoti_events_messages_total{handler="membership-freeze",outcome="ok"} %d
zenoti_events_messages_total{handler="membership-freeze",outcome="retry"} 50
# TYPE zenoti_events_in_flight gauge
zenoti_events_in_flight{handler="membership-freeze"} 3
zenoti_events_in_flight{handler="<b>x</b>"} 1
# TYPE zenoti_events_spool_entries gauge
zenoti_events_spool_entries 7
# TYPE zenoti_events_spool_bytes gauge
zenoti_events_spool_bytes 2048
# TYPE zenoti_events_spool_limit_bytes gauge
zenoti_events_spool_limit_bytes 1048576
# TYPE zenoti_events_spool_oldest_age_seconds gauge
zenoti_events_spool_oldest_age_seconds 12
"""


@pytest.fixture
async def metrics_url() -> AsyncIterator[tuple[str, list[int]]]:
    """A /metrics that answers METRICS with the ok count in the list it yields."""
    handled = [100]

    async def serve(_: web.Request) -> web.Response:
        return web.Response(text=METRICS % handled[0], content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", serve)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/metrics")), handled
    await server.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    url, prefix = redis_url(), f"console-{uuid.uuid4().hex[:8]}"
    yield url, prefix
    async with aioredis.Redis.from_url(url) as client:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)


async def _shared_state(url: str, prefix: str) -> None:
    """Tenant acme spent three calls and has one center's members; Zenoti paused globex's
    budget, and one of its messages waits for a token in the broker."""
    async with aioredis.Redis.from_url(url) as client:
        log = logs.get_logger()
        budget = RedisBudget(client, key=budget_key(prefix, "acme"), capacity=60, window=WINDOW,
                             log=log)
        for _ in range(3):
            await budget.acquire()
        paused = RedisBudget(client, key=budget_key(prefix, "globex"), capacity=60,
                             window=WINDOW, log=log)
        paused.pause(120)
        await paused.settled()  # pause is advisory: sent without waiting
        with pytest.raises(BudgetExhausted):
            await paused.acquire(max_wait=0)
        store = RedisSnapshotStore(client, prefix, "acme", log)
        await store.add("members", "C1", {"m1": {"guest": "g1"}})
        await store.set_meta("members", "C1", Meta(0, time.time() - 120, time.time()))


async def test_overview_shows_every_source(broker: Broker, metrics_url: tuple[str, list[int]],
                                           redis_prefix: tuple[str, str]) -> None:
    url = await prepare(broker.url)
    for n, reason in enumerate(["invalid_payload", "invalid_payload", "rejected"]):
        await park(url, f"p{n}", reason=reason)
    async with channel(url) as ch:
        for _ in range(2):
            await ch.default_exchange.publish(aio_pika.Message(b"{}"),
                                              queue_name("package-status"))
    redis, prefix = redis_prefix
    await _shared_state(redis, prefix)
    live, handled = metrics_url
    settings = Settings(
        amqp_url=SecretStr(url), console_token=SecretStr("r"), console_secure_cookie=False,
        redis_url=SecretStr(redis), redis_prefix=prefix, console_metrics_urls=[live, DEAD],
        api_calls_per_window=60, api_window_seconds=WINDOW,
        tenants={"acme": TenantSettings(), "globex": TenantSettings()})
    app = make_app(settings)
    app[SCRAPER] = Scraper(settings.console_metrics_urls, min_gap=0.2)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        await client.post("/login", data={"token": "r"}, allow_redirects=False)
        first = await client.get("/")
        text = await first.text()
        assert first.status == 200, text
        assert "id='nav-overview'" in text and "id='logout'" in text
        row = _row(text, HANDLER)
        assert "invalid_payload: 2, rejected: 1" in row and "<td>3</td>" in row  # in flight
        assert "measuring" in row
        assert "<td>2</td>" in _row(text, "package-status")  # its queue's depth
        assert "3 of 59" in _row(text, "acme") and "members: 1 center(s)" in _row(text, "acme")
        globex = _row(text, "globex")
        assert "59 of 59" in globex and "<td>1</td>" in globex and "members: none" in globex
        assert re.search(r"<td>1[12][0-9] s</td>", globex)  # paused
        assert "<td>7</td>" in _row(text, live) and "<td>2048</td>" in _row(text, live)
        assert "unavailable" in _row(text, DEAD)
        assert "<b>x</b>" not in text
        handled[0] += 30
        time.sleep(0.3)
        again = await (await client.get("/")).text()
        assert "measuring" not in _row(again, HANDLER)
    finally:
        await client.close()


def _row(page: str, first_cell: str) -> str:
    """The table row whose first cell is ``first_cell``."""
    start = page.index(f"<tr><td>{first_cell}</td>")
    return page[start:page.index("</tr>", start)]

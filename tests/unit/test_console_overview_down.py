"""The overview when its sources are down or not configured: the page still answers 200 and
says which (no broker, Redis or /metrics needed: each points at a closed port)."""

from __future__ import annotations

import time

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor.console.app import make_app
from processor.settings import Settings, TenantSettings

CLOSED = "127.0.0.1:9"


async def _overview(settings: Settings) -> str:
    client = TestClient(TestServer(make_app(settings)))
    await client.start_server()
    try:
        await client.post("/login", data={"token": "r"}, allow_redirects=False)
        answer = await client.get("/")
        assert answer.status == 200
        return await answer.text()
    finally:
        await client.close()


async def test_sources_down_read_unavailable() -> None:
    started = time.monotonic()
    text = await _overview(Settings(
        amqp_url=SecretStr(f"amqp://guest:guest@{CLOSED}/"), console_token=SecretStr("r"),
        console_secure_cookie=False, redis_url=SecretStr(f"redis://{CLOSED}/0"),
        console_metrics_urls=[f"http://{CLOSED}/metrics"],
        tenants={"acme": TenantSettings(), "globex": TenantSettings()}))
    assert time.monotonic() - started < 15
    assert "id='broker'" in text and "Broker: unavailable" in text
    assert text.count("unavailable (ConnectionError)") == 2  # both tenants
    assert f"http://{CLOSED}/metrics" in text
    for name in ("nav-overview", "nav-lots", "nav-types", "nav-archive", "logout"):
        assert f"id='{name}'" in text


async def test_sources_not_configured_say_so() -> None:
    text = await _overview(Settings(
        amqp_url=SecretStr(f"amqp://guest:guest@{CLOSED}/"), console_token=SecretStr("r"),
        console_secure_cookie=False))
    assert "Redis: not configured" in text and "Metrics: not configured" in text


async def test_an_empty_redis_url_reads_not_configured() -> None:
    """``ZENOTI_EVENTS_REDIS_URL=""`` is Redis off, as everywhere else: not a 500."""
    text = await _overview(Settings(
        amqp_url=SecretStr(f"amqp://guest:guest@{CLOSED}/"), console_token=SecretStr("r"),
        console_secure_cookie=False, redis_url=SecretStr(""),
        tenants={"acme": TenantSettings()}))
    assert "Redis: not configured" in text

"""A metrics URL whose host resolves to several addresses (a headless Service) is scraped at
each address with its Host header kept, at most FAN_OUT, one address family, each address a
source with its own rate; a name of one address, or an IP, is scraped as it is."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from processor.console import scrape
from processor.console.scrape import FAN_OUT, Scraper, targets

NAME = "metrics.test"
TEXT = ('# TYPE zenoti_events_messages counter\n'
        'zenoti_events_messages_total{handler="a",outcome="ok"} %d\n')


def _resolving(monkeypatch: pytest.MonkeyPatch, addresses: list[tuple[int, str]]) -> None:
    """``NAME`` resolves to ``addresses`` (family, address); other names as usual."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def fake(host: Any, port: Any, **kw: Any) -> list[Any]:
        if host != NAME:
            return await real(host, port, **kw)
        return [(family, socket.SOCK_STREAM, 6, "", (at, port or 80)) for family, at in addresses]

    monkeypatch.setattr(loop, "getaddrinfo", fake)


@pytest.fixture
async def two_pods() -> AsyncIterator[tuple[int, list[str]]]:
    """Two /metrics on one port at 127.0.0.1 and 127.0.0.2; the Host headers they saw."""
    hosts: list[str] = []
    servers = []
    port = 0
    for n, address in enumerate(["127.0.0.1", "127.0.0.2"]):
        async def serve(request: web.Request, n: int = n) -> web.Response:
            hosts.append(request.headers["Host"])
            return web.Response(text=TEXT % ((n + 1) * 100 * len(hosts)))

        app = web.Application()
        app.router.add_get("/metrics", serve)
        server = TestServer(app, host=address, port=port or None)
        await server.start_server()
        port = server.port or 0
        servers.append(server)
    yield port, hosts
    for server in servers:
        await server.close()


async def test_each_address_is_a_source_with_the_host_kept(
        monkeypatch: pytest.MonkeyPatch, two_pods: tuple[int, list[str]]) -> None:
    port, hosts = two_pods
    _resolving(monkeypatch, [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1"),
                             (socket.AF_INET6, "::1")])
    url = f"http://{NAME}:{port}/metrics"
    scraper = Scraper([url], min_gap=0.0)
    first = await scraper.scrape()
    assert [s.url for s in first] == [f"{url} (127.0.0.1)", f"{url} (127.0.0.2)"]
    assert all(s.sample is not None for s in first)
    assert set(hosts) == {f"{NAME}:{port}"}
    await asyncio.sleep(0.05)
    await scraper.scrape()
    rates = scraper.rates()
    assert rates is not None and rates["a"] > 0 and len(scraper._history) == 2


async def test_fan_out_is_bounded_and_one_family(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving(monkeypatch, [(socket.AF_INET, f"10.0.{n // 250}.{n % 250}") for n in range(40)])
    assert len(await targets(f"http://{NAME}:9100/metrics", 2.0)) == FAN_OUT
    _resolving(monkeypatch, [(socket.AF_INET6, "fd00::1"), (socket.AF_INET6, "fd00::2")])
    found = await targets(f"https://{NAME}/metrics", 2.0)
    assert [t.url for t in found] == ["https://[fd00::1]/metrics", "https://[fd00::2]/metrics"]
    assert found[0].options() == {"headers": {"Host": NAME}, "server_hostname": NAME}


async def test_one_address_or_an_ip_is_scraped_as_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving(monkeypatch, [(socket.AF_INET, "10.0.0.1")])
    url = f"http://{NAME}:9100/metrics"
    assert [(t.url, t.options()) for t in await targets(url, 2.0)] == [(url, {})]
    assert [t.url for t in await targets("http://10.1.2.3:9/m", 2.0)] == ["http://10.1.2.3:9/m"]
    with pytest.raises(ValueError):
        await targets("ftp://x/m", 2.0)


async def test_a_name_that_does_not_resolve_is_one_unavailable_source() -> None:
    found = await Scraper(["http://no-such-host.invalid:9100/metrics"], timeout=2.0).scrape()
    assert len(found) == 1 and found[0].sample is None and found[0].error
    assert scrape.redact("http://no-such-host.invalid:9100/metrics") == found[0].url

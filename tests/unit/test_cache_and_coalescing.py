"""Fewer calls per event: the cache per kind, freshness for events, and single flight."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from pydantic import SecretStr

from processor.errors import BudgetExhausted
from processor.metrics import Metrics
from processor.zenoti.budget import TokenBucket
from processor.zenoti.cache import KINDS, MemoryCache
from processor.zenoti.client import ZenotiClient
from processor.zenoti.coalesce import Coalescer

GUEST = {"id": "g1", "center_id": "c1", "personal_info": {"first_name": "A", "last_name": "B"}}
LIST = {"guest_memberships": [{"user_membership_id": "m1"}], "error": None}


class Api:
    def __init__(self, delay: float = 0.0) -> None:
        self.paths: list[str] = []
        self.delay = delay

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        await asyncio.sleep(self.delay)
        body = LIST if request.url.path.endswith("/memberships") else GUEST
        return httpx.Response(200, json=body)


def client(api: Api, metrics: Metrics | None = None, budget: TokenBucket | None = None,
           short_wait: float = 2.0) -> ZenotiClient:
    http = httpx.AsyncClient(base_url="http://z.test", transport=httpx.MockTransport(api))
    return ZenotiClient(http, tenant="t", api_key=SecretStr("k"),
                        budget=budget or TokenBucket(1000, 1.0), metrics=metrics or Metrics(),
                        cache=MemoryCache(), short_wait=short_wait)


async def test_a_guest_is_fetched_once_then_served_from_the_cache() -> None:
    api, metrics = Api(), Metrics()
    zenoti = client(api, metrics)
    for _ in range(3):
        assert (await zenoti.get_guest("g1")).id == "g1"
    assert len(api.paths) == 1
    assert metrics.api_cache.labels(kind="guest", result="hit")._value.get() == 2


async def test_a_list_fetched_before_the_event_was_received_is_fetched_again() -> None:
    api = Api()
    zenoti = client(api)
    await zenoti.bound(time.time()).list_memberships("g1", "c1")
    later_event = zenoti.bound(time.time() + 0.001)
    await asyncio.sleep(0.01)
    await later_event.list_memberships("g1", "c1")
    assert len(api.paths) == 2


async def test_a_list_fetched_after_the_event_was_received_serves_it() -> None:
    api = Api()
    zenoti = client(api)
    received = time.time()
    await asyncio.sleep(0.01)
    await zenoti.bound(time.time()).list_memberships("g1", "c1")
    await zenoti.bound(received).list_memberships("g1", "c1")  # queued before the fetch
    assert len(api.paths) == 1


async def test_concurrent_identical_requests_share_one_call() -> None:
    api, metrics = Api(delay=0.05), Metrics()
    zenoti = client(api, metrics)
    guests = await asyncio.gather(*(zenoti.get_guest("g1") for _ in range(5)))
    assert {g.id for g in guests} == {"g1"} and len(api.paths) == 1
    assert metrics.api_coalesced.labels(endpoint="guest")._value.get() == 4


async def test_a_budget_without_a_token_soon_defers_to_the_broker_without_calling() -> None:
    api, metrics = Api(), Metrics()
    zenoti = client(api, metrics, budget=TokenBucket(1, 60.0), short_wait=1.0)
    await zenoti.get_guest("g1")
    with pytest.raises(BudgetExhausted) as info:
        await zenoti.get_guest("g2")
    assert info.value.retry_after is not None and info.value.retry_after > 50
    assert len(api.paths) == 1
    assert metrics.budget_deferred.labels(tenant="t")._value.get() == 1


async def test_the_memory_cache_expires_entries_after_their_kinds_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = MemoryCache()
    await cache.put(KINDS["guest"], "g1", {"id": "g1"})
    assert await cache.get(KINDS["guest"], "g1") is not None
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + KINDS["guest"].ttl + 1)
    assert await cache.get(KINDS["guest"], "g1") is None


async def test_the_memory_cache_is_bounded() -> None:
    cache = MemoryCache(max_entries=2)
    for key in "abc":
        await cache.put(KINDS["invoice"], key, {"k": key})
    assert [await cache.get(KINDS["invoice"], k) is not None for k in "abc"] == [False, True, True]


async def test_a_flight_started_before_the_caller_needs_is_not_joined() -> None:
    flights: Coalescer[int] = Coalescer()
    calls = 0

    async def make() -> int:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0.05)
        return mine

    first = asyncio.create_task(flights.run("k", None, make))
    await asyncio.sleep(0.01)
    second = await flights.run("k", time.time(), make)
    assert (await first, second) == (1, 2)


async def test_an_error_reaches_every_joiner() -> None:
    flights: Coalescer[int] = Coalescer()

    async def fail() -> int:
        await asyncio.sleep(0.02)
        raise RuntimeError("boom")

    results = await asyncio.gather(*(flights.run("k", None, fail) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

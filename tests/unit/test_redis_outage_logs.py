"""A Redis outage is one log line per cause, however many events meet it, and its end one more."""

from __future__ import annotations

import random
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from processor.logs import Throttle, get_logger
from processor.worker.dedupe import RedisDeduplicator
from processor.zenoti.cache import KINDS, RedisCache
from processor.zenoti.shared_budget import RedisBudget


async def test_events_meeting_a_closed_redis_port_log_one_line_per_cause() -> None:
    closed = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    throttle = Throttle(60.0)  # as the process's shared THROTTLE, but this test's own
    log = get_logger()
    done = RedisDeduplicator(closed, "test:done", 60, log, throttle)
    cache = RedisCache(closed, "test:api", log, throttle)
    budget = RedisBudget(closed, key="test:budget:t", capacity=1000, window=60.0, log=log,
                         rng=random.Random(1), throttle=throttle)
    try:
        with capture_logs() as logged:
            for n in range(50):  # what 50 events ask of Redis, in a worker
                assert not await done.seen(f"h:{n}")
                assert await cache.get(KINDS["invoice"], str(n)) is None
                await budget.acquire(max_wait=2.0)
                await cache.put(KINDS["invoice"], str(n), {"id": n})
                await done.remember(f"h:{n}")
    finally:
        await closed.aclose()
    assert sorted(e["event"] for e in logged) == [
        "budget.redis_unavailable", "cache.unavailable", "dedupe.unavailable"]
    assert all(e["log_level"] == "warning" and "ConnectionError" in e["error"] for e in logged)


class Flaky:
    """The two calls a deduplicator makes, failing until ``up``."""

    def __init__(self) -> None:
        self.up = False

    async def exists(self, *_: Any) -> int:
        if not self.up:
            raise RedisConnectionError("Connection refused")
        return 0

    async def set(self, *_: Any, **__: Any) -> bool:
        return await self.exists() == 0


async def test_the_first_success_after_an_outage_says_so_once() -> None:
    redis = Flaky()
    done = RedisDeduplicator(redis, "test:done", 60, get_logger(), Throttle(60.0))  # type: ignore[arg-type]
    with capture_logs() as logged:
        for _ in range(10):
            await done.seen("k")
        redis.up = True
        for _ in range(10):
            await done.seen("k")
            await done.remember("k")
    assert [e["event"] for e in logged] == ["dedupe.unavailable", "dedupe.recovered"]
    assert logged[1]["occurrences"] == 10 and logged[1]["log_level"] == "info"

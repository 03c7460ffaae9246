"""Remembering keys for a window, to drop duplicates: Redis when configured, else memory.

Two users: the ingress remembers each accepted delivery's key (a Zenoti resend within the window
is answered 200 and not published again), and the worker remembers ``<handler>:<key>`` once a
handler succeeded (a broker redelivery after a crash is acked without running again).

The Redis store is shared by every pod. The memory store is bounded (oldest keys dropped first)
and per process: correct for one process only, which the processes say at start-up.
A store that fails (Redis away) never blocks work: ``seen`` answers False (process it; the
worst case is a duplicate, which downstream ids make harmless) and the failure is logged, once
per minute however many calls fail (``logs.Throttle``), and its end once. Every call's outcome
sets ``zenoti_events_redis_up{store="dedupe"}`` (``processor.zenoti.redis_up``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.zenoti.redis_up import RedisUp


class Deduplicator(Protocol):
    """Keys seen within a window."""

    async def seen(self, key: str) -> bool:
        """True if ``key`` was remembered less than the window ago."""
        ...

    async def remember(self, key: str) -> None:
        """Remember ``key`` for the window."""
        ...

    async def aclose(self) -> None: ...


class MemoryDeduplicator:
    """In-process, bounded to ``max_keys``; expired keys are dropped lazily."""

    def __init__(self, window: float, max_keys: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._max = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, float] = OrderedDict()

    async def seen(self, key: str) -> bool:
        expires = self._keys.get(key)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._keys[key]
            return False
        return True

    async def remember(self, key: str) -> None:
        self._keys[key] = self._clock() + self._window
        self._keys.move_to_end(key)
        while len(self._keys) > self._max:
            self._keys.popitem(last=False)

    async def aclose(self) -> None:
        self._keys.clear()


class RedisDeduplicator:
    """Shared through Redis: one key per entry, ``<namespace>:<key>``, ``SET .. EX window``.

    ``throttle`` keeps an outage to a line a minute (default: the process's ``THROTTLE``);
    ``up`` records each call's outcome."""

    def __init__(self, client: aioredis.Redis, namespace: str, window: float,
                 log: FilteringBoundLogger, throttle: logs.Throttle | None = None,
                 up: RedisUp | None = None) -> None:
        self._redis = client
        self._up = up or RedisUp()
        self._prefix = f"{namespace}:"
        self._window = max(1, int(window))
        self._log = log
        self._throttle = throttle or logs.THROTTLE

    async def seen(self, key: str) -> bool:
        try:
            found = bool(await self._redis.exists(self._prefix + key))
        except RedisError as exc:
            self._unavailable("seen", exc)
            return False
        self._available()
        return found

    async def remember(self, key: str) -> None:
        try:
            await self._redis.set(self._prefix + key, b"1", ex=self._window)
        except RedisError as exc:
            self._unavailable("remember", exc)
            return
        self._available()

    def _unavailable(self, operation: str, exc: RedisError) -> None:
        self._up.failed(exc)
        self._throttle.warning(self._log, _DOWN, operation=operation, error=repr(exc))

    def _available(self) -> None:
        self._up.answered()
        self._throttle.recovered(self._log, _DOWN, "dedupe.recovered")

    async def aclose(self) -> None:
        await self._redis.aclose()


_DOWN = "dedupe.unavailable"


def make_deduplicator(
    redis_url: str | None, namespace: str, window: float, max_keys: int,
    log: FilteringBoundLogger, up: RedisUp | None = None, timeout: float = 1.0,
) -> Deduplicator:
    """Redis-backed when ``redis_url`` is given, else in memory (with a start-up warning).
    ``namespace`` prefixes every Redis key, e.g. ``zenoti-events:done``; ``up`` records the
    Redis calls' outcomes. ``timeout`` bounds each connect, reply and wait for a pooled
    connection: short, because a store that is slow costs a duplicate at worst."""
    if redis_url:
        # A pool that waits (bounded) for a free connection: redis-py's default pool raises
        # MaxConnectionsError at once past 100, and a busy process has more in flight.
        client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
            max_connections=256, timeout=timeout))
        return RedisDeduplicator(client, namespace, window, log, up=up)
    log.warning("dedupe.in_process", namespace=namespace,
                detail="no redis_url: duplicates are caught within this process only")
    return MemoryDeduplicator(window, max_keys)

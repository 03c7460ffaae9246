"""One API budget per Zenoti organisation, shared by every worker process and pod via Redis.

The bucket lives in one Redis hash per tenant (``tokens``, ``updated``, ``blocked``), changed
only by Lua scripts, which Redis runs atomically, on Redis's own clock (``TIME``), so pods with
skewed clocks still share one timeline.

``acquire`` *reserves* a token: if none is free, the count goes below zero and the caller is
told how long to sleep for its turn, so callers are served in the order they reached Redis,
without polling. A wait longer than ``max_wait`` reserves nothing and raises
``BudgetExhausted`` for the message to wait in the broker. ``observe`` and ``pause`` carry what
Zenoti reported to every pod: fewer tokens than we count, or none until a reset.

If Redis fails, the call proceeds on a local ``TokenBucket`` of the same size (logged): a
degraded budget is better than stopping, and Zenoti's own 429s still pace us.
"""

from __future__ import annotations

import asyncio
import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor.errors import BudgetExhausted
from processor.ratelimit import TokenBucket

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'blocked')
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = tonumber(s[1]) or capacity
local updated = tonumber(s[2]) or now
local blocked = tonumber(s[3]) or 0
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
"""
_SAVE = """
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
           'blocked', tostring(blocked))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) * 10 + 60)
"""
ACQUIRE = _NOW + """
local wait = math.max(blocked - now, (1 - tokens) / rate, 0)
if wait > tonumber(ARGV[3]) then return {0, tostring(wait)} end
tokens = tokens - 1
""" + _SAVE + "return {1, tostring(wait)}"
OBSERVE = _NOW + """
if ARGV[3] ~= '' then tokens = math.min(tokens, tonumber(ARGV[3])) end
if ARGV[4] ~= '' then
  blocked = math.max(blocked, now + tonumber(ARGV[4]))
  tokens = math.min(tokens, 0)
end
""" + _SAVE + "return 1"


class RedisBudget:
    """The ``Budget`` of one tenant, in Redis under ``<prefix>:budget:<tenant>``."""

    def __init__(self, client: aioredis.Redis, *, key: str, capacity: int, window: float,
                 log: FilteringBoundLogger) -> None:
        self._redis = client
        self._key = key
        self._args = (capacity, capacity / window)
        self._acquire = client.register_script(ACQUIRE)
        self._observe = client.register_script(OBSERVE)
        self._fallback = TokenBucket(capacity, window)
        self._log = log
        self._pending: set[asyncio.Task[None]] = set()

    async def acquire(self, max_wait: float = math.inf) -> float:
        """Reserve a token and sleep until its turn; ``BudgetExhausted`` if too far off."""
        limit = "1e18" if math.isinf(max_wait) else repr(max_wait)
        try:
            granted, wait = await self._acquire(keys=[self._key], args=[*self._args, limit])
        except RedisError as exc:
            self._log.warning("budget.redis_unavailable", error=repr(exc))
            return await self._fallback.acquire(max_wait)
        seconds = float(wait)
        if not int(granted):
            raise BudgetExhausted(f"no API token within {max_wait:g} s", retry_after=seconds)
        if seconds > 0:
            await asyncio.sleep(seconds)
        return seconds

    def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Lower the shared count to Zenoti's; with none left, block until its reset."""
        if remaining is None:
            return
        block = reset_seconds if remaining <= 0 and reset_seconds is not None else None
        self._send(str(remaining), "" if block is None else repr(block))

    def pause(self, seconds: float) -> None:
        """No pod calls for ``seconds`` (Zenoti answered 429 with ``Retry-After``)."""
        if seconds > 0:
            self._send("", repr(seconds))

    def _send(self, remaining: str, block: str) -> None:
        # Advisory: the caller does not wait for Redis; the next acquire sees the result.
        task = asyncio.create_task(self._update(remaining, block))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _update(self, remaining: str, block: str) -> None:
        try:
            await self._observe(keys=[self._key], args=[*self._args, remaining, block])
        except RedisError as exc:
            self._log.warning("budget.redis_unavailable", error=repr(exc))

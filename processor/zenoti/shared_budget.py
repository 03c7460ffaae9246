"""One API budget per Zenoti organisation, shared by every worker process and pod via Redis.

The bucket lives in one Redis hash per tenant (``tokens``, ``updated``, ``blocked``), changed
only by Lua scripts, which Redis runs atomically, on Redis's own clock (``TIME``), so pods with
skewed clocks still share one timeline.

``acquire`` *reserves* a token: if none is free, the count goes below zero and the caller is
told how long to sleep for its turn, so callers are served in the order they reached Redis,
without polling. A wait longer than ``max_wait`` reserves nothing and raises
``BudgetExhausted`` for the message to wait in the broker. ``observe`` and ``pause`` carry what
Zenoti reported to every pod: fewer tokens than we count, or none until a reset.

When to come back: not when the next token comes (every waiting message would come back at
once, and all but one wait again), but after the turns of the messages already waiting for
this tenant. Each deferral registers its expected return in a sorted set
(``<key>:demand``: member = one deferral, score = when it comes back, on Redis's clock); the
entries whose time has passed are dropped, so the set counts the messages still in delay
queues. ``retry_after`` = the wait for a token with the reservations already made, plus one
token's time per waiting message (at most ``horizon``, jittered by +/-10 %): the waiting
messages come back spread over the time the budget needs to serve them. One call per
waiting message is a lower bound (a message may need two or three): never an overestimate
that leaves the budget idle; a message that needs more waits again for those.

Why ``horizon`` (default: one and a half bucket windows, a window being the time the bucket
takes to refill): messages sent further come back through delay queues of a few fixed tiers,
so in clumps; a clump is served only as far as the bucket holds tokens (its capacity) and the
rest wait again, while the budget went unused before it. Within the horizon the returns are
spread finely enough for the budget to stay busy (measured: ``docs/api-budget.md``); a longer
backlog costs a message about one wait per horizon.

Headroom: the bucket holds ``capacity - headroom`` tokens (one by default) at the rate of
``capacity`` per ``window``. A call reaches Zenoti a little after its token was taken here,
and that delay varies by pod and moment; two calls whose tokens were a refill apart can
arrive closer together, and Zenoti's bucket, run to empty, would answer the second 429. A
token of Zenoti's bucket never spent absorbs a variation of up to one refill (1 s at 60 a
minute), at the cost of one call of the burst. Zenoti's ``RateLimit-Remaining`` is believed
less the headroom, for the same reason.

If Redis fails, the call proceeds on a local ``TokenBucket`` of the same size: a degraded
budget is better than stopping, and Zenoti's own 429s still pace us. The outage is logged
once a minute however many calls notice it (``logs.THROTTLE``), and its end once; every call's
outcome sets ``zenoti_events_redis_up{store="budget"}`` (``processor.zenoti.redis_up``).
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.errors import BudgetExhausted
from processor.zenoti.budget import HORIZON_WINDOWS, JITTER, TokenBucket
from processor.zenoti.redis_up import RedisUp

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
# A deferral comes back after the messages already waiting (KEYS[2]), one token's time each,
# at most ARGV[6] (the horizon) after its own token would come; ARGV[5] is the jitter.
ACQUIRE = _NOW + """
local wait = math.max(blocked - now, (1 - tokens) / rate, 0)
if wait > tonumber(ARGV[3]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local waiting = redis.call('ZCARD', KEYS[2])
  local later = wait + math.min(waiting / rate, tonumber(ARGV[6])) * tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + later, ARGV[4])
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(last[2]) - now) + 60)
  return {0, tostring(later), waiting}
end
tokens = tokens - 1
""" + _SAVE + "return {1, tostring(wait), 0}"
OBSERVE = _NOW + """
if ARGV[3] ~= '' then tokens = math.min(tokens, tonumber(ARGV[3])) end
if ARGV[4] ~= '' then
  blocked = math.max(blocked, now + tonumber(ARGV[4]))
  tokens = math.min(tokens, 0)
end
""" + _SAVE + "return 1"
# Read-only: the tokens left now, the seconds Zenoti's block has to run, the messages waiting.
STATE = _NOW + """
local waiting = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
return {tostring(tokens), tostring(math.max(blocked - now, 0)), waiting}
"""


def budget_key(prefix: str, tenant: str) -> str:
    """The key of ``tenant``'s bucket under ``REDIS_PREFIX`` ``prefix``."""
    return f"{prefix}:budget:{tenant}"


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A tenant's budget as Redis has it now: ``used`` calls of the ``burst`` a window
    allows (reservations included: it may exceed ``burst``), ``blocked_for`` seconds of a
    pause Zenoti asked for, ``waiting`` messages deferred to the broker for a token."""

    used: int
    burst: int
    blocked_for: float
    waiting: int


class RedisBudget:
    """The ``Budget`` of one tenant, in Redis under ``<prefix>:budget:<tenant>`` (the bucket)
    and ``<prefix>:budget:<tenant>:demand`` (the messages waiting for it in the broker).

    ``horizon`` (seconds, default 1.5 ``window``) bounds the spread of deferrals, ``headroom`` is
    the tokens of Zenoti's bucket never spent (see the module); ``rng`` draws the jitter;
    ``throttle`` keeps an outage to a line a minute; ``up`` records each call's outcome."""

    def __init__(self, client: aioredis.Redis, *, key: str, capacity: int, window: float,
                 log: FilteringBoundLogger, horizon: float | None = None, headroom: int = 1,
                 rng: random.Random | None = None, throttle: logs.Throttle | None = None,
                 up: RedisUp | None = None) -> None:
        self._redis = client
        self._up = up or RedisUp()
        self._keys = [key, f"{key}:demand"]
        burst = max(capacity - headroom, 1)
        self._headroom = capacity - burst
        self._args = (burst, capacity / window)
        spread = HORIZON_WINDOWS * window if horizon is None else horizon
        self._horizon = repr(spread)
        self._acquire = client.register_script(ACQUIRE)
        self._observe = client.register_script(OBSERVE)
        self._state = client.register_script(STATE)
        self._rng = rng or random.Random()
        self._fallback = TokenBucket(burst, burst * window / capacity,
                                     horizon=spread, rng=self._rng)
        self._log = log
        self._throttle = throttle or logs.THROTTLE
        self._pending: set[asyncio.Task[None]] = set()

    async def acquire(self, max_wait: float = math.inf) -> float:
        """Reserve a token and sleep until its turn; ``BudgetExhausted`` if too far off, with
        a ``retry_after`` behind every message already waiting (see the module)."""
        limit = "1e18" if math.isinf(max_wait) else repr(max_wait)
        jitter = repr(self._rng.uniform(1 - JITTER, 1 + JITTER))
        try:
            granted, wait, waiting = await self._acquire(
                keys=self._keys,
                args=[*self._args, limit, secrets.token_hex(8), jitter, self._horizon])
        except RedisError as exc:
            self._unavailable(exc)
            return await self._fallback.acquire(max_wait)
        self._available()
        seconds = float(wait)
        if not int(granted):
            raise BudgetExhausted(f"no API token within {max_wait:g} s ({int(waiting)} "
                                  "messages waiting before this one)", retry_after=seconds)
        if seconds > 0:
            await asyncio.sleep(seconds)
        return seconds

    async def state(self) -> BudgetState:
        """The budget now, read without changing it; ``RedisError`` if Redis fails (no
        fallback: this is for an operator's view, not for a call)."""
        tokens, blocked, waiting = await self._state(keys=self._keys, args=list(self._args))
        burst = int(self._args[0])
        return BudgetState(used=max(0, math.ceil(burst - float(tokens) - 1e-9)), burst=burst,
                           blocked_for=float(blocked), waiting=int(waiting))

    def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Lower the shared count to Zenoti's; with none left, block until its reset."""
        if remaining is None:
            return
        block = reset_seconds if remaining <= 0 and reset_seconds is not None else None
        self._send(str(remaining - self._headroom), "" if block is None else repr(block))

    def pause(self, seconds: float) -> None:
        """No pod calls for ``seconds`` (Zenoti answered 429 with ``Retry-After``)."""
        if seconds > 0:
            self._send("", repr(seconds))

    async def settled(self, bound: float = 10.0) -> None:
        """Wait, at most ``bound`` seconds, for the advisory writes (``pause``, ``observe``)
        sent so far to reach Redis or fail: what a reader elsewhere sees after it is what was
        said."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=bound)

    def _send(self, remaining: str, block: str) -> None:
        # Advisory: the caller does not wait for Redis; the next acquire sees the result.
        task = asyncio.create_task(self._update(remaining, block))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _update(self, remaining: str, block: str) -> None:
        try:
            await self._observe(keys=self._keys[:1], args=[*self._args, remaining, block])
        except RedisError as exc:
            self._unavailable(exc)
            return
        self._available()

    def _available(self) -> None:
        self._up.answered()
        self._throttle.recovered(self._log, _DOWN, "budget.redis_recovered")

    def _unavailable(self, exc: RedisError) -> None:
        self._up.failed(exc)
        self._throttle.warning(self._log, _DOWN, error=repr(exc),
                               detail="proceeding on a bucket of this process")


_DOWN = "budget.redis_unavailable"

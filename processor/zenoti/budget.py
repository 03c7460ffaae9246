"""The API call budget: how many Zenoti calls a tenant may make, and when.

Zenoti allows an organisation 60 calls a minute by default, as a token bucket, and reports
what is left on every answer (``RateLimit-Remaining``, ``RateLimit-Reset``) and how long to
back off after a 429 (``Retry-After``), REFERENCE 4.3. ``Budget`` is the small interface the
API client needs; ``TokenBucket`` implements it inside one process. A bucket shared by every
worker of an organisation (Redis, say) can later stand behind the same three methods.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from processor.errors import BudgetExhausted

__all__ = ["HORIZON_WINDOWS", "JITTER", "Budget", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Float refill arithmetic may land a hair short of a whole token after sleeping exactly the
# computed wait; without this slack the waiter would sleep again for a few nanoseconds.
_EPSILON = 1e-9
# A deferral's retry_after is spread by a factor in [1 - JITTER, 1 + JITTER], so that messages
# deferred together (by pods that do not share a bucket, say) do not come back together.
JITTER = 0.1
# How far ahead a deferral is spread at most, in bucket windows (processor.zenoti.shared_budget).
HORIZON_WINDOWS = 1.5


class Budget(Protocol):
    """Permission to call the Zenoti API, corrected by what Zenoti reports."""

    async def acquire(self, max_wait: float = math.inf) -> float:
        """Wait until one call is allowed, take it, and return the seconds waited; raise
        ``BudgetExhausted`` (taking nothing) when the wait would exceed ``max_wait``, with a
        ``retry_after`` that leaves the messages already waiting their turns first."""
        ...

    def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Take Zenoti's ``RateLimit-Remaining`` / ``RateLimit-Reset`` into account.

        ``None`` means the header was absent or unreadable: nothing is learnt from it."""
        ...

    def pause(self, seconds: float) -> None:
        """Allow no call for ``seconds`` (Zenoti answered 429 with ``Retry-After``)."""
        ...


class TokenBucket:
    """An in-process token bucket of ``capacity`` tokens refilled continuously over
    ``window_seconds``, so ``TokenBucket(60, 60.0)`` allows a burst of 60 then one a second.

    Waiters are served first come, first served: one lock is held by the waiter at the head
    of the queue while it sleeps exactly the computed wait (no polling). It wakes again only
    if Zenoti's reports moved the goalposts meanwhile. ``clock``, ``sleep`` and ``rng`` (the
    jitter) are injectable so that tests can run on a fake timeline.

    A caller told to wait elsewhere (``BudgetExhausted``) is remembered until the time it was
    told to come back; the next one is told to come back after all of them, one token's time
    each, at most ``horizon`` (default: ``HORIZON_WINDOWS`` windows) after its own token would come
    (``processor.zenoti.shared_budget`` explains why, for the shared bucket).
    """

    def __init__(
        self,
        capacity: int,
        window_seconds: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        horizon: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if capacity < 1 or not window_seconds > 0:
            raise ValueError("a token bucket needs capacity >= 1 and window_seconds > 0")
        self._capacity = float(capacity)
        self._per_second = capacity / window_seconds
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(capacity)
        self._updated = clock()
        self._blocked_until = -math.inf
        self._lock = asyncio.Lock()
        self._queued = 0
        self._horizon = HORIZON_WINDOWS * window_seconds if horizon is None else horizon
        self._rng = rng or random.Random()
        self._deferred: list[float] = []  # a heap of when deferred callers come back

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional while refilling); for metrics and tests."""
        self._refill(self._clock())
        return self._tokens

    async def acquire(self, max_wait: float = math.inf) -> float:
        """Wait for a token and take it; return the seconds waited, queueing included.

        The expected wait (the next token, plus one token's time per caller queued ahead) is
        checked against ``max_wait`` before queueing: ``BudgetExhausted`` if over."""
        started = self._clock()
        expected = self._expected_wait()
        if expected > max_wait:
            later = self._defer(started, expected)
            raise BudgetExhausted(f"no API token within {max_wait:g} s", retry_after=later)
        self._queued += 1
        try:
            async with self._lock:
                while (wait := self._try_take()) > 0:
                    await self._sleep(wait)
        finally:
            self._queued -= 1
        return self._clock() - started

    def _expected_wait(self) -> float:
        now = self._clock()
        self._refill(now)
        blocked = max(self._blocked_until - now, 0.0)
        short = max(1.0 - self._tokens, 0.0) / self._per_second
        return max(blocked, short) + self._queued / self._per_second

    def _defer(self, now: float, expected: float) -> float:
        """Seconds until a caller deferred now should come back: after the callers deferred
        before it and not yet back, one token's time each, at most ``horizon`` after its own
        token would come; the return is remembered."""
        while self._deferred and self._deferred[0] <= now:
            heapq.heappop(self._deferred)
        waiting = min(len(self._deferred) / self._per_second, self._horizon)
        later = expected + waiting * self._rng.uniform(1 - JITTER, 1 + JITTER)
        heapq.heappush(self._deferred, now + later)
        return later

    def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Believe Zenoti when it counts fewer tokens than we do: other processes of the same
        organisation spend from the same bucket. When it counts none, no token is given
        until its reset. A higher count is ignored: our own share is the stricter limit."""
        if remaining is None:
            return
        self._refill(self._clock())
        self._tokens = min(self._tokens, float(max(remaining, 0)))
        if remaining <= 0 and reset_seconds is not None:
            self.pause(reset_seconds)

    def pause(self, seconds: float) -> None:
        """No token until ``seconds`` from now; an earlier pause is extended, never shortened.

        Tokens still accrue while paused, as they do in Zenoti's own bucket: the pause only
        says "not before"."""
        if not seconds > 0:  # also rejects NaN
            return
        now = self._clock()
        self._refill(now)
        self._tokens = 0.0
        self._blocked_until = max(self._blocked_until, now + seconds)

    def _try_take(self) -> float:
        """Take a token and return 0, or return the seconds until one may be taken."""
        now = self._clock()
        self._refill(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(self._tokens - 1.0, 0.0)
            return 0.0
        return (1.0 - self._tokens) / self._per_second

    def _refill(self, now: float) -> None:
        elapsed = max(now - self._updated, 0.0)  # a clock that steps back adds nothing
        self._tokens = min(self._capacity, self._tokens + elapsed * self._per_second)
        self._updated = now

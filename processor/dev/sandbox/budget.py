"""The sandbox's rate limit: Zenoti's token bucket per organisation (REFERENCE 4.3).

One API key is one organisation, so each key gets its own bucket of ``calls_per_window``
tokens, refilled continuously at ``calls_per_window / window_seconds`` per second. Every
call takes a token or is refused with 429; ``Budget.headers`` renders Zenoti's headers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
_EPSILON = 1e-9  # keeps float noise from turning 12.0 s into a ceil of 13


def _ceil(seconds: float) -> int:
    return max(0, math.ceil(seconds - _EPSILON))


@dataclass(frozen=True, slots=True)
class Grant:
    """The bucket's answer to one call.

    ``remaining`` is the whole tokens left; ``reset_seconds`` the whole seconds until one
    more token is in (0 when full); ``retry_after`` the seconds a refused caller should
    wait (0 when allowed, at least 1 otherwise).
    """

    allowed: bool
    remaining: int
    reset_seconds: int
    retry_after: float


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity / window_seconds`` per second; starts full."""

    def __init__(self, capacity: int, window_seconds: float, clock: Clock = time.monotonic) -> None:
        if capacity < 1 or window_seconds <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and window_seconds > 0")
        self.capacity = capacity
        self.rate = capacity / window_seconds
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def take(self) -> Grant:
        """Consume a token if there is one; either way, say where the bucket stands."""
        self._refill()
        allowed = self._tokens >= 1.0
        if allowed:
            self._tokens -= 1.0
        return self._grant(allowed)

    def peek(self) -> Grant:
        """Where the bucket stands, without consuming (``allowed`` says a call would pass)."""
        self._refill()
        return self._grant(self._tokens >= 1.0)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _grant(self, allowed: bool) -> Grant:
        tokens = self._tokens
        whole = math.floor(tokens + _EPSILON)
        reset = 0 if tokens >= self.capacity else _ceil((whole + 1 - tokens) / self.rate)
        retry = 0 if allowed else max(1, _ceil((1.0 - tokens) / self.rate))
        return Grant(allowed=allowed, remaining=whole, reset_seconds=reset, retry_after=retry)


class Budget:
    """One ``TokenBucket`` per API key, made on the key's first call."""

    def __init__(self, calls_per_window: int, window_seconds: float,
                 clock: Clock = time.monotonic) -> None:
        TokenBucket(calls_per_window, window_seconds, clock)  # validate now, not on first call
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, api_key: str) -> TokenBucket:
        if api_key not in self._buckets:
            self._buckets[api_key] = TokenBucket(self.calls_per_window, self.window_seconds,
                                                 self.clock)
        return self._buckets[api_key]

    def take(self, api_key: str) -> Grant:
        return self.bucket(api_key).take()

    def full(self) -> Grant:
        """The answer for a caller without a bucket (an unauthorised one): a full bucket."""
        return Grant(allowed=True, remaining=self.calls_per_window, reset_seconds=0, retry_after=0)

    @property
    def limit(self) -> str:
        """``60;w=60;b=60``: refill per window, window seconds, bucket size."""
        window = f"{self.window_seconds:g}"
        return f"{self.calls_per_window};w={window};b={self.calls_per_window}"

    def headers(self, grant: Grant) -> dict[str, str]:
        """Zenoti's rate-limit headers for ``grant``; ``Retry-After`` only when refused."""
        headers = {
            "Organization-RateLimit-Limit": self.limit,
            "RateLimit-Limit": self.limit,
            "RateLimit-Remaining": str(grant.remaining),
            "RateLimit-Reset": str(grant.reset_seconds),
        }
        if not grant.allowed:
            headers["Retry-After"] = f"{grant.retry_after:g}"
        return headers

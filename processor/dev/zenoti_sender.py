"""Zenoti's webhook sender's retry policy (REFERENCE 1.4), for ``processor.dev.simulator``.

Zenoti waits 10 s for an answer, attempts a delivery up to 5 times with exponential backoff
between attempts (30 s doubling, at most 10 min), and switches the webhook off after 20
consecutive failed attempts, counted across all its deliveries and reset by any 2xx. Nothing is
sent after that until a person re-enables it. ``zenoti_policy`` gives those numbers, compressed
by a time factor as the sandbox compresses its budget; ``Switch`` is the consecutive-failure count.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import TypedDict

from processor.errors import ConfigError

ZENOTI_TIMEOUT = 10.0  # seconds Zenoti waits for an answer to one attempt
ZENOTI_ATTEMPTS = 5  # attempts of one delivery: the first and 4 resends
ZENOTI_BACKOFF = 30.0  # seconds before the first resend; doubles per resend
ZENOTI_MAX_BACKOFF = 600.0
ZENOTI_SWITCH_OFF_AFTER = 20  # consecutive failed attempts, across deliveries


class RetryPolicy(TypedDict):
    """The ``SimulatorConfig`` fields a retry policy sets."""

    max_resends: int
    backoff: float
    max_backoff: float
    timeout: float
    switch_off_after: int | None


def zenoti_policy(time_factor: float = 1.0) -> RetryPolicy:
    """Zenoti's policy with every duration divided by ``time_factor`` (> 0; 10: 10x faster).

    Raises ``ConfigError`` for a factor <= 0. Counts (attempts, switch-off) are not compressed.
    """
    if not time_factor > 0:  # also refuses NaN
        raise ConfigError(f"invalid simulator config: time_factor must be > 0, got {time_factor}")
    return RetryPolicy(max_resends=ZENOTI_ATTEMPTS - 1, backoff=ZENOTI_BACKOFF / time_factor,
                       max_backoff=ZENOTI_MAX_BACKOFF / time_factor,
                       timeout=ZENOTI_TIMEOUT / time_factor,
                       switch_off_after=ZENOTI_SWITCH_OFF_AFTER)


def backoff(resend: int, first: float, cap: float) -> float:
    """Seconds to wait before resend number ``resend`` (1-based): ``first`` doubling, <= ``cap``."""
    return float(min(cap, first * 2 ** (resend - 1)))


class Switch:
    """The webhook's on/off state: off for good once ``after`` attempts in a row failed.

    ``after=None`` never switches off. Must be made inside the running event loop.
    """

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.failures = 0  # consecutive failed attempts so far
        self.started = time.monotonic()
        self.off_after: float | None = None  # seconds from ``started`` to the switch-off
        self._off = asyncio.Event()

    @property
    def off(self) -> bool:
        return self._off.is_set()

    def record(self, ok: bool) -> bool:
        """Count one attempt's outcome (a 2xx resets the count); True when this one switched
        the webhook off. Once off, stays off."""
        self.failures = 0 if ok else self.failures + 1
        if self.after is None or self.failures < self.after or self.off:
            return False
        self.off_after = time.monotonic() - self.started
        self._off.set()
        return True

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, cut short by a switch-off; True when switched off."""
        # A switch-off must end the waits at once (backoffs, pacing), or a run would
        # outlive it by up to a maximum backoff.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._off.wait()
        return self.off


def latency_summary(seconds: list[float]) -> dict[str, float] | None:
    """p50, p99 and max of answer times, nearest-rank, in seconds; None for no times.

    Against Zenoti's 10 s timeout, the tail is what matters: an answer later than that is a
    failed attempt, and 20 of those in a row switch the webhook off.
    """
    if not seconds:
        return None
    ranked = sorted(seconds)
    p50, p99 = (ranked[max(0, math.ceil(q * len(ranked)) - 1)] for q in (0.5, 0.99))
    return {"p50": round(p50, 4), "p99": round(p99, 4), "max": round(ranked[-1], 4)}

"""Delayed retry that waits in the broker, never in a worker.

A failed message is republished to one of its handler's delay queues
(``zenoti.h.<handler>.retry.<tier>``); each has a fixed TTL and dead-letters back to the
handler's work queue when it expires. Fixed tiers rather than a per-message TTL, because
RabbitMQ expires messages only at the head of a queue: in a queue where every message has the
same TTL, head order is expiry order.

Which tier: exponential backoff from the first tier, with full jitter in [0.5, 1.5) of the
target, rounded up to the tier that covers it. A ``Retry-After`` from Zenoti instead picks the
tier that covers it. Throttling is not a fault of the message, so rate-limited attempts count
towards the maximum age but not the maximum number of attempts.

When to give up: after ``max_attempts`` failures or ``max_age_seconds`` after the first, the
message is dead-lettered with its whole history (``x-zenoti-history``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import HeadersType

from processor.fate import Fate
from processor.settings import RetryLimits

ATTEMPT = "x-zenoti-attempt"
FIRST_FAILURE = "x-zenoti-first-failure-at"
HISTORY = "x-zenoti-history"
_HISTORY_KEPT = 20
_ERROR_KEPT = 300


def tier_label(seconds: float) -> str:
    """``5`` -> ``5s``, ``120`` -> ``2m``, ``3600`` -> ``1h``: the suffix of a delay queue."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def delay_queue_name(handler: str, seconds: float) -> str:
    return f"zenoti.h.{handler}.retry.{tier_label(seconds)}"


@dataclass(frozen=True, slots=True)
class Delay:
    """Retry after ``seconds`` through ``queue``, with these headers."""

    queue: str
    seconds: float
    headers: HeadersType


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Dead-letter now: ``reason`` is ``attempts_exhausted`` or ``max_age_exceeded``."""

    reason: str
    headers: HeadersType


class RetryPolicy:
    """Plans the next step of a message that failed transiently."""

    def __init__(
        self, handler: str, tiers: Sequence[float], limits: RetryLimits,
        rng: random.Random | None = None,
    ) -> None:
        self.handler = handler
        self.tiers = tuple(tiers)
        self.limits = limits
        self._rng = rng or random.Random()

    def plan(self, headers: Mapping[str, Any], fate: Fate, now: datetime | None = None) -> (
        Delay | GiveUp
    ):
        """The next step for a message with ``headers`` whose last attempt ended in ``fate``."""
        now = now or datetime.now(UTC)
        attempt = _int(headers.get(ATTEMPT), 1)
        first = _time(headers.get(FIRST_FAILURE)) or now
        updated = {
            **headers, ATTEMPT: attempt + 1, FIRST_FAILURE: first.isoformat(),
            HISTORY: [*_history(headers), _entry(attempt, fate, now)][-_HISTORY_KEPT:],
        }
        throttled = fate.retry_after is not None or fate.reason == "rate_limited"
        if (now - first).total_seconds() >= self.limits.max_age_seconds:
            return GiveUp("max_age_exceeded", updated)
        if not throttled and attempt >= self.limits.max_attempts:
            return GiveUp("attempts_exhausted", updated)
        seconds = self._tier(attempt, fate.retry_after)
        return Delay(delay_queue_name(self.handler, seconds), seconds, updated)

    def _tier(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            target = retry_after
        else:
            target = self.tiers[0] * 2 ** (attempt - 1) * self._rng.uniform(0.5, 1.5)
        return next((t for t in self.tiers if t >= target), self.tiers[-1])


def _entry(attempt: int, fate: Fate, now: datetime) -> dict[str, Any]:
    return {"attempt": attempt, "reason": fate.reason, "error": fate.detail[:_ERROR_KEPT],
            "at": now.isoformat()}


def _history(headers: Mapping[str, Any]) -> list[Any]:
    value = headers.get(HISTORY)
    return list(value) if isinstance(value, list | tuple) else []


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _time(value: object) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None

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

A wait for our own API budget (``BudgetExhausted``) is a turn in a queue
(``processor.zenoti.shared_budget``), spread over the time the budget needs: it picks one of the two
tiers around its ``retry_after`` at random, the nearer more likely, so that the delay is the
``retry_after`` on average. Rounding every one up would bring all the messages whose turns
fall between two tiers back at once at the upper one, and leave the budget idle before; so
the upper tier is never taken when it is more than twice the ``retry_after``.

When to give up: after ``max_attempts`` failures or ``max_age_seconds`` after the first, the
message is dead-lettered with its whole history (``x-zenoti-history``).

Whose clock: the first failure is stamped by one pod and aged by another, so the age is the
difference of two clocks. A stamp up to ``clock_skew`` seconds in the future is that skew, and
ages as 0 (never negative); one further ahead is not a clock but a wrong or crafted header, and
counts as now (rewritten, and logged), else the message would never grow old enough to give up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.broker.protocols import Headers
from processor.broker.topology import delay_queue_name
from processor.fate import Fate
from processor.message import ATTEMPT, FIRST_FAILURE, HISTORY, count, moment
from processor.settings import RetryLimits

_HISTORY_KEPT = 20
_ERROR_KEPT = 300
# Backoff doubles per attempt; past this many doublings every tier is covered anyway, and an
# attempt count from a crafted header must not overflow the arithmetic.
_DOUBLINGS_KEPT = 32


@dataclass(frozen=True, slots=True)
class Delay:
    """Retry after ``seconds`` through ``queue``, with these headers."""

    queue: str
    seconds: float
    headers: Headers


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Dead-letter now: ``reason`` is ``attempts_exhausted`` or ``max_age_exceeded``."""

    reason: str
    headers: Headers


class RetryPolicy:
    """Plans the next step of a message that failed transiently.

    ``clock_skew``: seconds another pod's clock may be ahead of ours (``retry_clock_skew``).
    ``log`` receives ``retry.first_failure_in_future``, at most once a minute per policy."""

    def __init__(
        self, handler: str, tiers: Sequence[float], limits: RetryLimits,
        rng: random.Random | None = None, *, clock_skew: float = 300.0,
        log: FilteringBoundLogger | None = None,
    ) -> None:
        self.handler = handler
        self.tiers = tuple(tiers)
        self.limits = limits
        self.clock_skew = timedelta(seconds=clock_skew)
        self._rng = rng or random.Random()
        self._log = log or logs.get_logger(handler=handler)
        self._throttle = logs.Throttle()

    def plan(self, headers: Mapping[str, Any], fate: Fate, now: datetime | None = None) -> (
        Delay | GiveUp
    ):
        """The next step for a message with ``headers`` whose last attempt ended in ``fate``."""
        now = now or datetime.now(UTC)
        attempt = count(headers.get(ATTEMPT)) or 1
        first = self._first_failure(headers.get(FIRST_FAILURE), now)
        updated = {
            **headers, ATTEMPT: attempt + 1, FIRST_FAILURE: first.isoformat(),
            HISTORY: [*_history(headers), _entry(attempt, fate, now)][-_HISTORY_KEPT:],
        }
        throttled = fate.throttled
        if _age(first, now) >= self.limits.max_age_seconds:
            return GiveUp("max_age_exceeded", updated)
        if not throttled and attempt >= self.limits.max_attempts:
            return GiveUp("attempts_exhausted", updated)
        seconds = self._tier(attempt, fate.retry_after,
                             spread=fate.waiting)
        return Delay(delay_queue_name(self.handler, seconds), seconds, updated)

    def _first_failure(self, value: object, now: datetime) -> datetime:
        first = moment(value)
        if first is None:
            return now
        if first - now > self.clock_skew:
            self._throttle.warning(
                self._log, "retry.first_failure_in_future", stamped=first.isoformat(),
                ahead_seconds=round((first - now).total_seconds()),
                tolerated_seconds=self.clock_skew.total_seconds())
            return now
        return first

    def _tier(self, attempt: int, retry_after: float | None, *, spread: bool) -> float:
        if retry_after is not None and not math.isnan(retry_after):
            target = retry_after
        else:
            doublings = min(attempt - 1, _DOUBLINGS_KEPT)
            target = self.tiers[0] * 2**doublings * self._rng.uniform(0.5, 1.5)
        above = next((t for t in self.tiers if t >= target), None)
        if above is None:
            return self.tiers[-1]
        below = max((t for t in self.tiers if t < target), default=None)
        if spread and below is not None and (
                above > 2 * target or self._rng.random() < (above - target) / (above - below)):
            return below
        return above


def _age(first: datetime, now: datetime) -> float:
    """Seconds since ``first``; 0 for a stamp within the tolerated skew ahead of ``now``."""
    return max((now - first).total_seconds(), 0.0)


def _entry(attempt: int, fate: Fate, now: datetime) -> dict[str, Any]:
    return {"attempt": attempt, "reason": fate.reason, "error": fate.detail[:_ERROR_KEPT],
            "at": now.isoformat()}


def _history(headers: Mapping[str, Any]) -> list[Any]:
    value = headers.get(HISTORY)
    return list(value) if isinstance(value, list | tuple) else []


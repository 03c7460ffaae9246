"""TokenBucket: continuous refill, fair waiting, and Zenoti's corrections, on a fake timeline."""

from __future__ import annotations

import asyncio
import random

import pytest

from processor.errors import BudgetExhausted
from processor.zenoti.budget import Budget, TokenBucket


class Timeline:
    """A clock that moves only when someone sleeps on it: the sleeper first lets every other
    ready task run at the current time, then the clock jumps to its wake-up time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)
        self.now += seconds


@pytest.fixture
def timeline() -> Timeline:
    return Timeline()


def bucket(timeline: Timeline, capacity: int = 60, window: float = 60.0) -> TokenBucket:
    return TokenBucket(capacity, window, clock=timeline.clock, sleep=timeline.sleep)


async def drain(b: TokenBucket, count: int) -> None:
    for _ in range(count):
        await b.acquire()


def test_a_token_bucket_is_a_budget(timeline: Timeline) -> None:
    budget: Budget = bucket(timeline)
    assert callable(budget.acquire) and callable(budget.observe) and callable(budget.pause)


@pytest.mark.parametrize(("capacity", "window"), [(0, 60.0), (60, 0.0), (60, -1.0)])
def test_a_bucket_without_capacity_or_window_is_refused(capacity: int, window: float) -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(capacity, window)


async def test_a_full_bucket_gives_its_capacity_without_waiting(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=5, window=5.0)
    waits = [await b.acquire() for _ in range(5)]
    assert waits == [0.0] * 5
    assert timeline.sleeps == []


async def test_an_empty_bucket_sleeps_once_for_the_refill_of_one_token(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    await drain(b, 60)
    waited = await b.acquire()
    assert waited == pytest.approx(1.0)
    assert timeline.sleeps == [pytest.approx(1.0)]


async def test_tokens_refill_continuously_up_to_capacity(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=10, window=10.0)
    await drain(b, 10)
    timeline.now += 2.5
    assert b.tokens == pytest.approx(2.5)
    timeline.now += 100.0
    assert b.tokens == pytest.approx(10.0)


async def test_concurrent_waiters_are_served_in_arrival_order(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=1, window=1.0)
    await b.acquire()
    served: list[str] = []

    async def wait(name: str) -> float:
        waited = await b.acquire()
        served.append(name)
        return waited

    waits = await asyncio.gather(*(wait(name) for name in "abc"))
    assert served == ["a", "b", "c"]
    assert waits == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]
    assert len(timeline.sleeps) == 3


async def test_observe_believes_zenoti_when_fewer_tokens_remain(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    b.observe(remaining=2, reset_seconds=30.0)
    assert b.tokens == pytest.approx(2.0)


async def test_observe_keeps_our_count_when_zenoti_counts_more(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    await drain(b, 59)
    b.observe(remaining=50, reset_seconds=1.0)
    assert b.tokens == pytest.approx(1.0)


async def test_zero_remaining_gives_no_token_until_the_reset(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    b.observe(remaining=0, reset_seconds=5.0)
    assert await b.acquire() == pytest.approx(5.0)


async def test_absent_rate_limit_headers_change_nothing(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=3, window=3.0)
    b.observe(remaining=None, reset_seconds=None)
    b.observe(remaining=None, reset_seconds=9.0)
    assert b.tokens == pytest.approx(3.0)
    assert await b.acquire() == 0.0


async def test_pause_gives_no_token_until_it_ends(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    b.pause(2.5)
    assert await b.acquire() == pytest.approx(2.5)


async def test_a_shorter_pause_never_shortens_a_longer_one(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    b.pause(10.0)
    b.pause(1.0)
    assert await b.acquire() == pytest.approx(10.0)


@pytest.mark.parametrize("seconds", [0.0, -3.0, float("nan")])
async def test_a_pause_of_no_time_is_ignored(timeline: Timeline, seconds: float) -> None:
    b = bucket(timeline, capacity=2, window=2.0)
    b.pause(seconds)
    assert await b.acquire() == 0.0


async def test_tokens_accrue_during_a_pause_like_zenotis_own(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=60, window=60.0)
    b.pause(3.0)
    await b.acquire()
    assert b.tokens == pytest.approx(2.0)


async def test_a_waiter_sleeps_again_when_a_pause_arrives_meanwhile(timeline: Timeline) -> None:
    b = bucket(timeline, capacity=1, window=1.0)
    await b.acquire()
    waiter = asyncio.create_task(b.acquire())
    await asyncio.sleep(0)  # the waiter computes a 1 s wait and sleeps
    b.pause(4.0)  # meanwhile a 429 arrives: 4 s from t=0
    assert await waiter == pytest.approx(4.0)
    assert timeline.sleeps == [pytest.approx(1.0), pytest.approx(3.0)]


async def test_deferred_callers_are_spread_over_the_time_the_budget_needs_to_serve_them(
    timeline: Timeline,
) -> None:
    b = TokenBucket(60, 60.0, clock=timeline.clock, sleep=timeline.sleep, rng=random.Random(3))
    await drain(b, 60)
    told = []
    for _ in range(100):  # a backlog: every caller finds the bucket empty
        with pytest.raises(BudgetExhausted) as info:
            await b.acquire(max_wait=0.5)
        assert info.value.retry_after is not None
        told.append(info.value.retry_after)
    # The k-th comes back after the k-1 before it, a token (1 s) each, +/- 10 % jitter: not
    # all together when the next token comes (1 s), to be deferred again; but at most one and
    # a half windows (90 s) after that token.
    for k, seconds in enumerate(told, start=1):
        ahead = min(k - 1, 90)
        assert 1 + 0.9 * ahead <= seconds <= 1 + 1.1 * ahead


async def test_the_horizon_bounds_how_far_deferrals_are_spread(timeline: Timeline) -> None:
    b = TokenBucket(60, 60.0, clock=timeline.clock, sleep=timeline.sleep, horizon=10.0)
    await drain(b, 60)
    told = []
    for _ in range(30):
        with pytest.raises(BudgetExhausted) as info:
            await b.acquire(max_wait=0.5)
        assert info.value.retry_after is not None
        told.append(info.value.retry_after)
    assert max(told) <= 1 + 11 and told[-1] >= 1 + 9


async def test_callers_that_came_back_no_longer_count_as_waiting(timeline: Timeline) -> None:
    b = TokenBucket(1, 1.0, clock=timeline.clock, sleep=timeline.sleep, rng=random.Random(3))
    await drain(b, 1)
    for _ in range(10):
        with pytest.raises(BudgetExhausted):
            await b.acquire(max_wait=0.0)
    timeline.now += 30.0  # every one of them came back meanwhile (and the bucket is full)
    await drain(b, 1)
    with pytest.raises(BudgetExhausted) as info:
        await b.acquire(max_wait=0.0)
    assert info.value.retry_after == pytest.approx(1.0, rel=0.1)

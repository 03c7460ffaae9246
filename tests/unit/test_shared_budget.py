"""The budget shared through Redis: one bucket per tenant for every process and pod."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from processor.errors import BudgetExhausted
from processor.logs import get_logger
from processor.zenoti.shared_budget import RedisBudget


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    yield redis
    await redis.aclose()


def budget(client: aioredis.Redis, key: str, capacity: int = 5, window: float = 1.0,
           headroom: int = 0) -> RedisBudget:
    return RedisBudget(client, key=key, capacity=capacity, window=window, log=get_logger(),
                       headroom=headroom)


async def test_two_budgets_on_one_key_share_one_bucket(client: aioredis.Redis) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    one, two = budget(client, key, 4, 60.0), budget(client, key, 4, 60.0)
    for b in (one, two, one, two):
        assert await b.acquire(max_wait=0.1) < 0.01
    with pytest.raises(BudgetExhausted):
        await two.acquire(max_wait=0.1)


async def test_waiters_reserve_their_turn_in_order_without_polling(client: aioredis.Redis) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    shared = budget(client, key, capacity=2, window=0.2)  # 10 tokens a second
    started = time.monotonic()
    waits = await asyncio.gather(*(shared.acquire(max_wait=5) for _ in range(6)))
    elapsed = time.monotonic() - started
    assert sorted(waits)[1] < 0.01
    assert 0.3 <= elapsed < 3.0  # 4 more tokens at 10/s (a polling budget would take longer)


async def test_a_pause_blocks_every_holder_of_the_key(client: aioredis.Redis) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    one, two = budget(client, key), budget(client, key)
    one.pause(30)
    await one.settled()
    with pytest.raises(BudgetExhausted) as info:
        await two.acquire(max_wait=1)
    assert info.value.retry_after is not None and info.value.retry_after > 25


async def test_zenotis_lower_count_is_believed(client: aioredis.Redis) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    shared = budget(client, key, capacity=50, window=60.0)
    shared.observe(remaining=1, reset_seconds=None)
    await shared.settled()
    assert await shared.acquire(max_wait=0.1) < 0.01
    with pytest.raises(BudgetExhausted):
        await shared.acquire(max_wait=0.1)


async def test_an_unreachable_redis_falls_back_to_a_local_bucket() -> None:
    redis = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await budget(redis, "x").acquire(max_wait=1) < 0.01
    finally:
        await redis.aclose()


async def test_deferrals_on_every_pod_queue_behind_the_messages_already_waiting(
    client: aioredis.Redis,
) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    token = 100.0  # seconds a token: the 50 calls below, however slow, barely refill
    pods = [budget(client, key, capacity=30, window=30 * token) for _ in range(2)]
    for _ in range(30):
        await pods[0].acquire(max_wait=0.1)
    told = []
    for n in range(20):
        with pytest.raises(BudgetExhausted) as info:
            await pods[n % 2].acquire(max_wait=0.5)
        assert info.value.retry_after is not None
        told.append(info.value.retry_after)
    await client.delete(key, f"{key}:demand")
    # The k-th deferral, on either pod, comes back after the k-1 before it: ~k tokens' time.
    for k, seconds in enumerate(told, start=1):
        assert token * (0.9 * k - 0.2) <= seconds <= token * 1.1 * k, told


async def test_deferrals_are_spread_over_one_and_a_half_windows_at_most(
    client: aioredis.Redis,
) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    token = 100.0  # seconds a token (refilled in 2 tokens' time): the calls barely refill
    shared = budget(client, key, capacity=2, window=2 * token)
    for _ in range(2):
        await shared.acquire(max_wait=0.1)
    told = []
    for _ in range(10):
        with pytest.raises(BudgetExhausted) as info:
            await shared.acquire(max_wait=0.5)
        assert info.value.retry_after is not None
        told.append(info.value.retry_after)
    # a token's wait, plus at most a horizon of 3 tokens' time jittered by 10 %
    assert max(told) <= token * (1 + 3.3) and told[-1] >= token * (1 + 2.7 - 0.2)
    ttl = await client.ttl(f"{key}:demand")
    await client.delete(key, f"{key}:demand")
    assert max(told) + 59 <= ttl <= max(told) + 62  # the set goes when its last entry is due


async def test_messages_stop_counting_as_waiting_once_their_time_has_come(
    client: aioredis.Redis,
) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    shared = budget(client, key, capacity=1, window=1.0)  # a token a second
    await shared.acquire(max_wait=0.1)
    for _ in range(5):
        with pytest.raises(BudgetExhausted):
            await shared.acquire(max_wait=0.0)
    # each was told at most 1 s (its token) + 1.5 s (the horizon) x 1.1: all due back by now
    await asyncio.sleep(3.0)
    await shared.acquire(max_wait=0.1)
    with pytest.raises(BudgetExhausted) as info:
        await shared.acquire(max_wait=0.0)
    # a token's wait alone (<= 1 s); one message still counted would add ~0.9 s or more
    assert info.value.retry_after is not None and info.value.retry_after < 1.5


async def test_one_token_of_zenotis_bucket_is_left_as_headroom_by_default(
    client: aioredis.Redis,
) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    shared = RedisBudget(client, key=key, capacity=4, window=60.0, log=get_logger())
    for _ in range(3):
        assert await shared.acquire(max_wait=0.1) < 0.01
    with pytest.raises(BudgetExhausted) as info:
        await shared.acquire(max_wait=0.1)
    assert info.value.retry_after == pytest.approx(15.0, rel=0.05)  # still 4 a minute


async def test_zenotis_count_is_believed_less_the_headroom(client: aioredis.Redis) -> None:
    key = f"test:budget:{uuid.uuid4().hex}"
    shared = RedisBudget(client, key=key, capacity=50, window=60.0, log=get_logger())
    shared.observe(remaining=2, reset_seconds=None)
    await shared.settled()
    assert await shared.acquire(max_wait=0.1) < 0.01
    with pytest.raises(BudgetExhausted):
        await shared.acquire(max_wait=0.1)

"""Remembering keys for a window: in memory (bounded) and in Redis (shared)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from structlog.testing import capture_logs

from processor.logs import get_logger
from processor.worker.dedupe import MemoryDeduplicator, make_deduplicator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_remembered_key_is_seen_within_the_window_and_forgotten_after() -> None:
    clock = Clock()
    store = MemoryDeduplicator(window=10, max_keys=100, clock=clock)
    assert not await store.seen("k")
    await store.remember("k")
    clock.now = 9.9
    assert await store.seen("k")
    clock.now = 10.0
    assert not await store.seen("k")


async def test_the_memory_store_is_bounded_dropping_the_oldest() -> None:
    store = MemoryDeduplicator(window=60, max_keys=3)
    for key in "abcd":
        await store.remember(key)
    assert [await store.seen(k) for k in "abcd"] == [False, True, True, True]


def redis_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/0"


async def test_redis_stores_are_shared_between_instances() -> None:
    url, namespace = redis_url(), f"test-{uuid.uuid4().hex}"
    one = make_deduplicator(url, namespace, 60, 10, get_logger())
    two = make_deduplicator(url, namespace, 60, 10, get_logger())
    try:
        await one.remember("event-1")
        assert await two.seen("event-1")
        assert not await two.seen("event-2")
    finally:
        await one.aclose()
        await two.aclose()


async def test_hundreds_in_flight_share_the_pool_rather_than_fail() -> None:
    """redis-py's default pool raised MaxConnectionsError at once past 100 connections: a
    busy ingress silently lost its de-duplication (the spool's fault tests found it).
    The bounds here are 10 s, not the default 1 s: 600 calls on one event loop of a loaded
    run can stall a reply past a second, which is a timeout, not the failure tested."""
    url, namespace = redis_url(), f"test-{uuid.uuid4().hex}"
    store = make_deduplicator(url, namespace, 60, 10, get_logger(), timeout=10.0)
    try:
        with capture_logs() as logs:
            await asyncio.gather(*(store.remember(f"k{n}") for n in range(600)))
            seen = await asyncio.gather(*(store.seen(f"k{n}") for n in range(600)))
        failed = [e for e in logs if e["event"] == "dedupe.unavailable"]
        assert not failed
        assert all(seen)
    finally:
        await store.aclose()


async def test_an_unreachable_redis_never_blocks_work() -> None:
    store = make_deduplicator("redis://127.0.0.1:1/0", "x", 60, 10, get_logger())
    try:
        await store.remember("k")
        assert not await store.seen("k")
    finally:
        await store.aclose()

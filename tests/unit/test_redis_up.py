"""``zenoti_events_redis_up``'s classification of a failed call, class by class (redis-py makes
the pool's, the auth and the loading errors ``ConnectionError`` subclasses or instances): our
own pool out of connections leaves the gauge as it was; credentials or ACL refused reads 0;
Redis loading its data set reads 1. The pool's errors are raised by redis-py's real pools."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
import structlog
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ConnectionError,
    MaxConnectionsError,
    NoPermissionError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
    TimeoutError,
)

from processor.metrics import Metrics
from processor.worker.dedupe import RedisDeduplicator
from processor.zenoti.redis_up import RedisUp, state_after


def gauge_after(*errors: RedisError) -> float | None:
    metrics = Metrics()
    up = RedisUp(metrics.redis_up, "dedupe")
    for exc in errors:
        up.failed(exc)
    return metrics.registry.get_sample_value("zenoti_events_redis_up", {"store": "dedupe"})


@pytest.mark.parametrize(("exc", "expected"), [
    (ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused."), 0),
    (TimeoutError("Timeout reading from socket"), 0),
    (AuthenticationError("WRONGPASS invalid username-password pair"), 0),
    (AuthenticationError("Authentication required."), 0),  # NOAUTH
    (AuthorizationError("not authorised"), 0),
    (NoPermissionError("NOPERM this user has no permissions to run the 'evalsha' command"), 0),
    (BusyLoadingError("Redis is loading the dataset in memory"), 1),
    (OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), 1),
    (ResponseError("ERR Error running script"), 1),
    (MaxConnectionsError("Too many connections"), None),
    (ConnectionError("No connection available."), None),
])
def test_each_class_of_failure(exc: RedisError, expected: int | None) -> None:
    assert state_after(exc) == expected
    assert gauge_after(exc) == (None if expected is None else float(expected))


@pytest.mark.parametrize("last", [0, 1])
def test_our_pool_out_of_connections_leaves_the_gauge_as_it_was(last: int) -> None:
    before = ConnectionError("refused") if last == 0 else ResponseError("ERR script")
    for exhausted in (MaxConnectionsError("Too many connections"),
                      ConnectionError("No connection available.")):
        assert gauge_after(before, exhausted) == float(last)


async def remembered_by_a_store_whose_pool_is_taken(pool: aioredis.ConnectionPool) -> float | None:
    """A store's real call through ``pool``, whose one connection is held (never connected:
    no Redis needed), after a call that had found Redis there."""
    metrics = Metrics()
    up = RedisUp(metrics.redis_up, "dedupe")
    up.answered()
    pool.get_available_connection()  # type: ignore[no-untyped-call]  # its one connection, taken
    client = aioredis.Redis(connection_pool=pool)
    store = RedisDeduplicator(client, "t:done", 60, structlog.get_logger(), up=up)
    try:
        await store.remember("k")
    finally:
        await pool.disconnect()
    return metrics.registry.get_sample_value("zenoti_events_redis_up", {"store": "dedupe"})


async def test_redis_pys_own_pools_out_of_connections_are_not_an_outage() -> None:
    plain = aioredis.ConnectionPool(host="127.0.0.1", port=1, max_connections=1)
    assert await remembered_by_a_store_whose_pool_is_taken(plain) == 1.0
    blocking = aioredis.BlockingConnectionPool(host="127.0.0.1", port=1, max_connections=1,
                                               timeout=0.05)
    assert await remembered_by_a_store_whose_pool_is_taken(blocking) == 1.0

"""Whether a Redis store can use Redis, for ``zenoti_events_redis_up{store}``.

Set from the store's real calls, never from a probe of its own, and classified explicitly
(``state_after``; redis-py makes many of these ``ConnectionError`` subclasses, so the class
alone does not say it):

- 1 when a call got an answer, an error of the command included (a script error, ``OOM``,
  ``BUSY``/``LOADING`` while Redis loads its data set): Redis is there and serves us.
- 0 when the call could not reach Redis (refused, reset, timed out), or when Redis refused our
  credentials or our ACL user (``AuthenticationError``: ``WRONGPASS``/``NOAUTH``;
  ``AuthorizationError``; ``NoPermissionError``: ``NOPERM``). Redis answered those, but our
  processes cannot use it: every call of the store fails and it runs degraded exactly as in an
  outage, so the same alert must see it; the store's warning log names the error.
- unchanged when our own connection pool had no connection to give (redis-py's
  ``MaxConnectionsError``, or the ``BlockingConnectionPool``'s ``No connection available``):
  our process was busy, which says nothing about Redis.

One gauge child per store (``budget``, ``snapshots``, ``dedupe``), made at the store's first
call that says something: before it, a series of 0 would claim an outage nobody saw. A store
given no gauge (tests, a store in memory) records nothing.
"""

from __future__ import annotations

from prometheus_client import Gauge
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    MaxConnectionsError,
    NoPermissionError,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What redis-py's BlockingConnectionPool raises, as a plain ConnectionError, when no
# connection came free within its timeout (sync and asyncio alike).
_POOL_TIMEOUT = "No connection available"


class RedisUp:
    """The child ``store`` of the labelled ``gauge`` (``Metrics.redis_up``), or nothing."""

    def __init__(self, gauge: Gauge | None = None, store: str = "") -> None:
        self._gauge = gauge
        self._store = store

    def answered(self) -> None:
        """A call got Redis's answer."""
        self._set(1)

    def failed(self, exc: RedisError) -> None:
        """A call failed with ``exc``: the gauge as ``state_after(exc)`` says."""
        state = state_after(exc)
        if state is not None:
            self._set(state)

    def _set(self, value: int) -> None:
        if self._gauge is not None:
            self._gauge.labels(store=self._store).set(value)


def state_after(exc: BaseException) -> int | None:
    """The gauge's value after a call failed with ``exc``: 0 (Redis not reached, or it refused
    our credentials or ACL user), 1 (Redis answered with an error of the command), ``None``
    (our own pool had no connection: unchanged). The order matters: the auth and loading
    errors and the pool's are ``ConnectionError`` subclasses or instances."""
    if pool_exhausted(exc):
        return None
    if isinstance(exc, AuthenticationError | AuthorizationError | NoPermissionError):
        return 0
    if isinstance(exc, BusyLoadingError):
        return 1
    return 0 if isinstance(exc, RedisConnectionError | RedisTimeoutError) else 1


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` is our connection pool having no connection to give."""
    return isinstance(exc, MaxConnectionsError) or (
        type(exc) is RedisConnectionError and str(exc).startswith(_POOL_TIMEOUT))


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` leaves the gauge at 0: Redis not reached, or not usable by us."""
    return state_after(exc) == 0

"""What the API answered, kept per kind of resource so that a call is not made twice.

The policy per kind (``KINDS``), from how the resource changes:

=============  ============  ============================================================
kind           kept for      why
=============  ============  ============================================================
invoice        30 days       an invoice's guest never changes (we read nothing else)
guest          10 minutes    identity and contact change rarely
memberships    5 minutes     change with the very events we process: an entry serves an
packages       5 minutes     event only if it was fetched after the event was received
=============  ============  ============================================================

"Fetched after the event was received" is how an arriving membership or package event
invalidates what was cached for that guest: older entries no longer serve it, while events
that queued up before a fetch all share it (the backlog case, when the budget is short).

``RedisCache`` is shared by every pod; ``MemoryCache`` is per process and bounded (least
recently used entries go first). Both store the JSON body with the wall-clock time it was
fetched. A failing Redis is a miss, never an error, logged once a minute however many calls
fail (``logs.Throttle``), and its end once; so is an entry that does not decode.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor import logs

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    ttl: float  # seconds an entry is kept at most
    event_fresh: bool  # serves an event only if fetched after the event was received


KINDS = {
    "invoice": Kind("invoice", 30 * 86_400.0, event_fresh=False),
    "guest": Kind("guest", 600.0, event_fresh=False),
    "memberships": Kind("memberships", 300.0, event_fresh=True),
    "packages": Kind("packages", 300.0, event_fresh=True),
}


@dataclass(frozen=True, slots=True)
class Entry:
    body: Body
    fetched_at: float  # wall clock, seconds since the epoch


class ApiCache(Protocol):
    async def get(self, kind: Kind, key: str) -> Entry | None: ...

    async def put(self, kind: Kind, key: str, body: Body) -> None: ...

    async def aclose(self) -> None: ...


_DOWN = "cache.unavailable"


class NullCache:
    """Keeps nothing: every look-up misses (``api_cache_enabled=false``, for comparisons)."""

    async def get(self, kind: Kind, key: str) -> Entry | None:
        return None

    async def put(self, kind: Kind, key: str, body: Body) -> None:
        return None

    async def aclose(self) -> None:
        return None


class MemoryCache:
    """In-process, at most ``max_entries`` across kinds."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    async def get(self, kind: Kind, key: str) -> Entry | None:
        full = f"{kind.name}:{key}"
        entry = self._entries.get(full)
        if entry is None:
            return None
        if time.time() - entry.fetched_at > kind.ttl:
            del self._entries[full]
            return None
        self._entries.move_to_end(full)
        return entry

    async def put(self, kind: Kind, key: str, body: Body) -> None:
        full = f"{kind.name}:{key}"
        self._entries[full] = Entry(body, time.time())
        self._entries.move_to_end(full)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisCache:
    """Shared: ``<prefix>:<kind>:<key>`` holds ``{"at": fetched_at, "body": ...}`` for the
    kind's TTL. ``throttle`` keeps an outage to a line a minute (default: ``logs.THROTTLE``)."""

    def __init__(self, client: aioredis.Redis, prefix: str, log: FilteringBoundLogger,
                 throttle: logs.Throttle | None = None) -> None:
        self._redis = client
        self._prefix = prefix
        self._log = log
        self._throttle = throttle or logs.THROTTLE

    async def get(self, kind: Kind, key: str) -> Entry | None:
        try:
            raw = await self._redis.get(f"{self._prefix}:{kind.name}:{key}")
        except RedisError as exc:
            self._throttle.warning(self._log, _DOWN, operation="get", error=repr(exc))
            return None
        self._throttle.recovered(self._log, _DOWN, "cache.recovered")
        if raw is None:
            return None
        try:
            stored = json.loads(raw)
            return Entry(dict(stored["body"]), float(stored["at"]))
        except (ValueError, TypeError, KeyError) as exc:  # written by something else: a miss
            self._throttle.warning(self._log, "cache.undecodable", kind=kind.name,
                                   error=repr(exc))
            return None

    async def put(self, kind: Kind, key: str, body: Body) -> None:
        value = json.dumps({"at": time.time(), "body": body}, separators=(",", ":"))
        try:
            await self._redis.set(f"{self._prefix}:{kind.name}:{key}", value,
                                  ex=max(1, int(kind.ttl)))
        except RedisError as exc:
            self._throttle.warning(self._log, _DOWN, operation="put", error=repr(exc))
            return
        self._throttle.recovered(self._log, _DOWN, "cache.recovered")

    async def aclose(self) -> None:
        await self._redis.aclose()

"""Where center snapshots live: Redis (shared by every pod) or this process's memory.

Redis keys, all under ``<prefix>:snap:<tenant>:<kind>`` and kept ``ttl`` seconds (a day)::

    :<center>           hash  row id -> row JSON
    :index              hash  row id -> center (a guest pass names no center)
    :<center>:meta      hash  next_page, as_of, refreshed_at
    :<center>:lock      string, SET NX EX: the pod loading this snapshot
    :<center>:demand:<hour>  counter of events that wanted it this hour

A failing Redis is no snapshot (the caller uses point look-ups), never an error: logged once
a minute however many calls fail (``logs.Throttle``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.snapshots import Meta, Row

_DOWN = "snapshot.unavailable"


class MemorySnapshotStore:
    """One process's snapshots, for a single worker (as the in-process budget is)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Row]] = {}
        self._index: dict[tuple[str, str], str] = {}
        self._meta: dict[tuple[str, str], Meta] = {}
        self._locks: dict[tuple[str, str], float] = {}
        self._demand: Counter[tuple[str, str, int]] = Counter()

    async def row(self, kind: str, center: str, key: str) -> Row | None:
        return self._rows.get((kind, center), {}).get(key)

    async def locate(self, kind: str, key: str) -> str | None:
        return self._index.get((kind, key))

    async def add(self, kind: str, center: str, rows: dict[str, Row]) -> None:
        self._rows.setdefault((kind, center), {}).update(rows)
        for key in rows:
            self._index[(kind, key)] = center

    async def meta(self, kind: str, center: str) -> Meta | None:
        return self._meta.get((kind, center))

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None:
        self._meta[(kind, center)] = meta

    async def claim(self, kind: str, center: str, seconds: float) -> bool:
        now = time.monotonic()
        if self._locks.get((kind, center), 0.0) > now:
            return False
        self._locks[(kind, center)] = now + seconds
        return True

    async def release(self, kind: str, center: str) -> None:
        self._locks.pop((kind, center), None)

    async def demand(self, kind: str, center: str) -> int:
        key = (kind, center, int(time.time() // 3600))
        self._demand[key] += 1
        return self._demand[key]


class RedisSnapshotStore:
    """One tenant's snapshots in Redis (see the module docstring for the keys)."""

    def __init__(self, client: aioredis.Redis, prefix: str, tenant: str,
                 log: FilteringBoundLogger, ttl: float = 86_400.0,
                 throttle: logs.Throttle | None = None) -> None:
        self._redis = client
        self._base = f"{prefix}:snap:{tenant}"
        self._ttl = int(ttl)
        self._log = log
        self._throttle = throttle or logs.THROTTLE

    def _key(self, kind: str, *parts: str) -> str:
        return ":".join((self._base, kind, *parts))

    async def row(self, kind: str, center: str, key: str) -> Row | None:
        raw = await self._call(self._redis.hget(self._key(kind, center), key))
        return _decoded(raw)

    async def locate(self, kind: str, key: str) -> str | None:
        raw = await self._call(self._redis.hget(self._key(kind, "index"), key))
        return raw.decode() if isinstance(raw, bytes) else None

    async def add(self, kind: str, center: str, rows: dict[str, Row]) -> None:
        if not rows:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._key(kind, center), mapping={k: json.dumps(v) for k, v in rows.items()})
        pipe.hset(self._key(kind, "index"), mapping=dict.fromkeys(rows, center))
        pipe.expire(self._key(kind, center), self._ttl)
        pipe.expire(self._key(kind, "index"), self._ttl)
        await self._call(pipe.execute())

    async def meta(self, kind: str, center: str) -> Meta | None:
        raw = await self._call(self._redis.hgetall(self._key(kind, center, "meta")))
        if not raw:
            return None
        try:
            values = {k.decode(): float(v) for k, v in raw.items()}
            return Meta(int(values["next_page"]), values["as_of"], values["refreshed_at"])
        except (KeyError, ValueError, AttributeError):
            return None  # written by something else: as if there were none

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None:
        key = self._key(kind, center, "meta")
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"next_page": meta.next_page, "as_of": meta.as_of,
                                "refreshed_at": meta.refreshed_at})
        pipe.expire(key, self._ttl)
        await self._call(pipe.execute())

    async def claim(self, kind: str, center: str, seconds: float) -> bool:
        key = self._key(kind, center, "lock")
        return bool(await self._call(self._redis.set(key, b"1", nx=True, ex=max(1, int(seconds)))))

    async def release(self, kind: str, center: str) -> None:
        await self._call(self._redis.delete(self._key(kind, center, "lock")))

    async def demand(self, kind: str, center: str) -> int:
        key = self._key(kind, center, "demand", str(int(time.time() // 3600)))
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 3600)
        result = await self._call(pipe.execute())
        return int(result[0]) if isinstance(result, list) and result else 0

    async def _call(self, pending: Any) -> Any:
        try:
            result = await pending
        except RedisError as exc:
            self._throttle.warning(self._log, _DOWN, error=repr(exc))
            return None
        self._throttle.recovered(self._log, _DOWN, "snapshot.recovered")
        return result


def _decoded(raw: object) -> Row | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

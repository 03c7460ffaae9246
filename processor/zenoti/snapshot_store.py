"""Where center snapshots live: Redis (shared by every pod) or this process's memory.

Redis keys, all under ``<prefix>:snap:<tenant>:<kind>`` and kept ``ttl`` seconds (a day;
every write renews the rows, the index and the meta together, so none outlives the others)::

    :c.<center>         hash  row id -> row JSON (only the fields the handlers read); the
                        center id lower-cased and quoted, so it cannot name another key
    :index              hash  row id -> center (a guest pass names no center)
    :c.<center>:meta    hash  next_page, as_of, refreshed_at
    :c.<center>:lock    string, SET NX PX: a random token of the pod loading this snapshot,
                        extended after each page and deleted only by its holder
    :c.<center>:demand:<hour>  counter of events that wanted it this hour

A meta whose rows hash is gone (evicted) reads as no snapshot, so it is loaded again rather
than answering "missing" for every row.

A failing Redis is no snapshot (the caller uses point look-ups), never an error: logged once
a minute however many calls fail (``logs.Throttle``); every call's outcome sets
``zenoti_events_redis_up{store="snapshots"}`` (``processor.zenoti.redis_up``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.zenoti.redis_up import RedisUp

Row = dict[str, Any]
_DOWN = "snapshot.unavailable"
# Compare-and-extend, compare-and-delete: only the holder of the token may touch the lock.
_EXTEND = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1]) end return 0"""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a center's list: rows by lower-case id, and whether another follows."""

    rows: dict[str, Row]
    more: bool


@dataclass(frozen=True, slots=True)
class Found:
    """A snapshot's row and the center whose snapshot holds it."""

    row: Row
    center: str


@dataclass(frozen=True, slots=True)
class Meta:
    """Where a center's snapshot stands: ``next_page`` to load (0 once complete), ``as_of``
    when its load or last refresh started, ``refreshed_at`` when a refresh was last tried."""

    next_page: int
    as_of: float
    refreshed_at: float

    @property
    def complete(self) -> bool:
        return self.next_page == 0


class SnapshotStore(Protocol):
    """Where one tenant's snapshots live (``processor.zenoti.snapshot_store``). ``meta`` is ``None``
    when the rows are gone (expired or evicted), so a snapshot is never complete and empty."""

    async def row(self, kind: str, center: str, key: str) -> Row | None: ...

    async def locate(self, kind: str, key: str) -> str | None: ...

    async def add(self, kind: str, center: str, rows: dict[str, Row]) -> None: ...

    async def meta(self, kind: str, center: str) -> Meta | None: ...

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None: ...

    async def claim(self, kind: str, center: str, seconds: float) -> str | None: ...

    async def extend(self, kind: str, center: str, token: str, seconds: float) -> bool: ...

    async def release(self, kind: str, center: str, token: str) -> None: ...

    async def demand(self, kind: str, center: str) -> int: ...




class MemorySnapshotStore:
    """One process's snapshots, for a single worker (as the in-process budget is)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Row]] = {}
        self._index: dict[tuple[str, str], str] = {}
        self._meta: dict[tuple[str, str], Meta] = {}
        self._locks: dict[tuple[str, str], tuple[str, float]] = {}
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
        return self._meta.get((kind, center)) if (kind, center) in self._rows else None

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None:
        self._meta[(kind, center)] = meta
        self._rows.setdefault((kind, center), {})

    async def claim(self, kind: str, center: str, seconds: float) -> str | None:
        now = time.monotonic()
        held = self._locks.get((kind, center))
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(8)
        self._locks[(kind, center)] = (token, now + seconds)
        return token

    async def extend(self, kind: str, center: str, token: str, seconds: float) -> bool:
        held = self._locks.get((kind, center))
        if held is None or held[0] != token:
            return False
        self._locks[(kind, center)] = (token, time.monotonic() + seconds)
        return True

    async def release(self, kind: str, center: str, token: str) -> None:
        held = self._locks.get((kind, center))
        if held is not None and held[0] == token:
            del self._locks[(kind, center)]

    async def demand(self, kind: str, center: str) -> int:
        key = (kind, center, int(time.time() // 3600))
        self._demand[key] += 1
        return self._demand[key]


class RedisSnapshotStore:
    """One tenant's snapshots in Redis (see the module docstring for the keys)."""

    def __init__(self, client: aioredis.Redis, prefix: str, tenant: str,
                 log: FilteringBoundLogger, ttl: float = 86_400.0,
                 throttle: logs.Throttle | None = None, up: RedisUp | None = None) -> None:
        self._redis = client
        self._up = up or RedisUp()
        self._base = f"{prefix}:snap:{tenant}"
        self._ttl = int(ttl)
        self._log = log
        self._throttle = throttle or logs.THROTTLE

    def _key(self, kind: str, *parts: str) -> str:
        return ":".join((self._base, kind, *parts))

    async def row(self, kind: str, center: str, key: str) -> Row | None:
        raw = await self._call(self._redis.hget(self._key(kind, _segment(center)), key))
        return _decoded(raw)

    async def locate(self, kind: str, key: str) -> str | None:
        raw = await self._call(self._redis.hget(self._key(kind, "index"), key))
        return raw.decode() if isinstance(raw, bytes) else None

    async def add(self, kind: str, center: str, rows: dict[str, Row]) -> None:
        if not rows:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._key(kind, _segment(center)),
                  mapping={k: json.dumps(v) for k, v in rows.items()})
        pipe.hset(self._key(kind, "index"), mapping=dict.fromkeys(rows, center))
        self._renew(pipe, kind, center)
        await self._call(pipe.execute())

    def _renew(self, pipe: Any, kind: str, center: str) -> None:
        for key in (self._key(kind, _segment(center)), self._key(kind, "index"),
                    self._key(kind, _segment(center), "meta")):
            pipe.expire(key, self._ttl)

    async def meta(self, kind: str, center: str) -> Meta | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._key(kind, _segment(center), "meta"))
        pipe.exists(self._key(kind, _segment(center)))
        answer = await self._call(pipe.execute())
        raw = answer[0] if isinstance(answer, list) and answer[1] else None
        if not raw:
            return None
        try:
            values = {k.decode(): float(v) for k, v in raw.items()}
            return Meta(int(values["next_page"]), values["as_of"], values["refreshed_at"])
        except (KeyError, ValueError, AttributeError):
            return None  # written by something else: as if there were none

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None:
        key = self._key(kind, _segment(center), "meta")
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(key, mapping={"next_page": meta.next_page, "as_of": meta.as_of,
                                "refreshed_at": meta.refreshed_at})
        self._renew(pipe, kind, center)
        await self._call(pipe.execute())

    async def claim(self, kind: str, center: str, seconds: float) -> str | None:
        token = secrets.token_hex(8)
        key = self._key(kind, _segment(center), "lock")
        taken = await self._call(self._redis.set(key, token, nx=True, px=int(seconds * 1000)))
        return token if taken else None

    async def extend(self, kind: str, center: str, token: str, seconds: float) -> bool:
        key = self._key(kind, _segment(center), "lock")
        done = await self._call(self._redis.eval(_EXTEND, 1, key, token, int(seconds * 1000)))
        return bool(done)

    async def release(self, kind: str, center: str, token: str) -> None:
        key = self._key(kind, _segment(center), "lock")
        await self._call(self._redis.eval(_RELEASE, 1, key, token))

    async def demand(self, kind: str, center: str) -> int:
        key = self._key(kind, _segment(center), "demand", str(int(time.time() // 3600)))
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 3600)
        result = await self._call(pipe.execute())
        return int(result[0]) if isinstance(result, list) and result else 0

    async def metas(self, kind: str, limit: int = 1000) -> list[Meta]:
        """The metas of up to ``limit`` of this tenant's ``kind`` snapshots, read only, for an
        operator's view; ``RedisError`` if Redis fails (not swallowed as ``_call`` does)."""
        pattern = _glob(self._key(kind, "c.")) + "*:meta"
        found: list[Meta] = []
        async for key in self._redis.scan_iter(match=pattern, count=500):
            raw: dict[Any, Any] = await self._redis.hgetall(key)
            try:
                values = {k.decode(): float(v) for k, v in raw.items()}
                found.append(Meta(int(values["next_page"]), values["as_of"],
                                  values["refreshed_at"]))
            except (KeyError, ValueError, AttributeError):
                continue
            if len(found) >= limit:
                break
        return found

    async def _call(self, pending: Any) -> Any:
        try:
            result = await pending
        except RedisError as exc:
            self._up.failed(exc)
            self._throttle.warning(self._log, _DOWN, error=repr(exc))
            return None
        self._up.answered()
        self._throttle.recovered(self._log, _DOWN, "snapshot.recovered")
        return result


def _segment(center: str) -> str:
    """A center id as one key segment: ``c.`` + lower case, URL-quoted, so no id (``index``,
    ``c1:meta``, an upper-case GUID) can reach another key."""
    return "c." + quote(center.strip().lower(), safe="")


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _decoded(raw: object) -> Row | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

"""The overview's figures from the broker and Redis, each source bounded in time.

Broker: each handler's work queue and lot by passive declare (ready messages, consumers), on
one connection per look. Parked by reason: a browsing pass over each lot
(``ParkingLot.reasons``), not at all over ``LIMIT`` messages (shown as "10,000+"), kept
``ttl`` seconds and run once at a time per lot, in a task of its own that a slow page does not
cancel (a cancelled pass could leave a duplicate in the lot), holding the lot's lock (``guard``:
"busy" while a replay, purge or view holds it). Redis: per tenant, the API
budget (``RedisBudget.state``) and the center snapshots' metas (``RedisSnapshotStore.metas``).
A source that fails raises to the caller, which shows it unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import aio_pika
import redis.asyncio as aioredis
from aio_pika.abc import AbstractConnection

from processor import logs
from processor.broker.topology import UNROUTED, dead_queue_name, queue_name
from processor.console import guard
from processor.ops import archive, dlq
from processor.ops.parking import Filter, ParkedMessage
from processor.ops.triage import TypeSurvey
from processor.settings import Settings
from processor.zenoti.shared_budget import BudgetState, RedisBudget, budget_key
from processor.zenoti.snapshot_store import Meta, RedisSnapshotStore

LIMIT = 10_000
BROKER_WAIT = 5.0
FAILED_TTL = 5.0  # seconds a lot's failed count is shown before it is asked again
PAGE = 100  # rows of a lot's page
TYPES = 100  # event types the types page keeps a sample of


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue's ready messages and consumers; ``None`` when it does not exist."""

    messages: int
    consumers: int


@dataclass(frozen=True, slots=True)
class Reasons:
    """A lot's messages by reason, else a ``note`` saying why not (over the limit, still
    counting, unavailable)."""

    counts: Counter[str] | None
    note: str = ""
    at: float = 0.0  # time.monotonic() of the count (0: not counted)


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant's budget and its snapshots' metas by kind."""

    budget: BudgetState
    snapshots: dict[str, list[Meta]]


async def queues(settings: Settings, handlers: list[str]) -> dict[str, Queue | None]:
    """Every handler's work queue and lot, and the unrouted lot, by queue name, within
    ``BROKER_WAIT`` seconds (else ``TimeoutError``)."""
    return await _declared(settings, [
        *(n for h in handlers for n in (queue_name(h), dead_queue_name(h))), UNROUTED])


async def depths(settings: Settings, sources: guard.Guard, lots: list[str]) -> dict[str, str]:
    """Each lot's (``dlq.open_lot``'s names) ready messages as a text, by one passive declare
    each within ``BROKER_WAIT`` seconds: "missing", or all "unavailable" if the broker fails."""
    names = {lot: UNROUTED if lot == dlq.UNROUTED_LOT else dead_queue_name(lot) for lot in lots}
    try:
        found = await _declared(settings, list(names.values()))
    except Exception as exc:  # any failure of the broker reads "unavailable"
        sources.failed("broker", exc)
        return dict.fromkeys(lots, "unavailable")
    sources.answered("broker")
    return {lot: "missing" if (q := found[name]) is None else f"{q.messages:,}"
            for lot, name in names.items()}


async def _declared(settings: Settings, names: list[str]) -> dict[str, Queue | None]:
    async with asyncio.timeout(BROKER_WAIT):
        connection = await archive.connection(settings, "console")
        async with connection:
            return {name: await _passive(connection, name) for name in names}


async def _passive(connection: AbstractConnection, name: str) -> Queue | None:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()
    result = declared.declaration_result
    return Queue(result.message_count or 0, result.consumer_count or 0)


@dataclass
class Types:
    """Per event type (at most ``TYPES``) its figures and one sample (headers dropped)."""

    seen: dict[str, TypeSurvey] = field(default_factory=dict)
    samples: dict[str, ParkedMessage] = field(default_factory=dict)
    more: int = 0

    def see(self, parked: ParkedMessage) -> None:
        if parked.event_type not in self.seen and len(self.seen) >= TYPES:
            self.more += 1
            return
        self.seen.setdefault(parked.event_type, TypeSurvey(parked.event_type)).add(parked)
        self.samples.setdefault(parked.event_type, replace(parked, headers={}, error=""))


@dataclass
class Listing:
    """The messages ``where`` selects: how many, and the page's (headers and bodies
    dropped)."""

    where: Filter
    start: int
    matched: int = 0
    shown: list[ParkedMessage] = field(default_factory=list)

    def see(self, parked: ParkedMessage) -> None:
        if not self.where.matches(parked):
            return
        if self.start <= self.matched < self.start + PAGE:
            self.shown.append(replace(parked, headers={}, body=b""))
        self.matched += 1


class ReasonCounts:
    """Parked by reason per lot, counted at most once per ``ttl`` seconds (a failed count
    shown ``failed_ttl`` seconds); a look waits for a count at most ``wait`` seconds."""

    def __init__(self, settings: Settings, guard_: guard.Guard, *, limit: int = LIMIT,
                 ttl: float = 30.0, wait: float = 5.0, failed_ttl: float = FAILED_TTL) -> None:
        self._settings, self._limit, self._ttl, self._wait = settings, limit, ttl, wait
        self._failed_ttl = failed_ttl
        self._guard = guard_  # the lots' locks, and where a source's failure is said
        self._tasks: dict[str, asyncio.Task[Reasons]] = {}
        self._counted: dict[str, tuple[float, Reasons]] = {}

    async def of(self, lot: str) -> Reasons:
        """The lot's (``dlq.open_lot``'s names) reasons, counted now or within ``ttl``."""
        counted = self._counted.get(lot)
        if counted is not None and time.monotonic() - counted[0] < self._ttl:
            return counted[1]
        task = self._tasks.get(lot)
        if task is None or task.done():
            task = self._tasks[lot] = asyncio.create_task(self._count(lot))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait)
        except TimeoutError:
            return Reasons(None, "counting: reload in a moment")

    async def _count(self, lot: str) -> Reasons:
        lock = self._guard.lock(lot)
        if not await guard.acquire(lock, self._wait / 2):  # within the look's wait
            return Reasons(None, "busy: a replay, purge or view is reading it")
        try:
            async with (asyncio.timeout(10 * self._wait + self._limit / 50),
                        dlq.open_lot(self._settings, lot) as parking):
                counts = await parking.reasons(limit=self._limit)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return Reasons(None, "missing")
        except Exception as exc:  # any failure of the source reads "unavailable"
            self._guard.failed("lot", exc, lot=lot)
            # kept briefly: reloads during an outage do not each ask the broker for every lot
            failure = Reasons(None, f"unavailable ({type(exc).__name__})")
            self._counted[lot] = (time.monotonic() - self._ttl + self._failed_ttl, failure)
            return failure
        finally:
            lock.release()
        self._guard.answered("lot")
        found = Reasons(counts, "" if counts is not None else f"{self._limit:,}+",
                        time.monotonic())
        self._counted[lot] = (time.monotonic(), found)
        return found

    async def close(self) -> None:
        """Stop the counts still running."""
        for task in self._tasks.values():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def redis_client(settings: Settings, timeout: float = 2.0) -> aioredis.Redis | None:
    """A client of ``REDIS_URL`` with bounded waits; ``None`` when it is not set or empty
    (as everywhere else: "" is Redis off)."""
    if settings.redis_url is None or not settings.redis_url.get_secret_value():
        return None
    return aioredis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=timeout,
                                   socket_connect_timeout=timeout)


async def tenant(client: aioredis.Redis, settings: Settings, name: str) -> Tenant:
    """``name``'s budget and snapshots as Redis holds them (``RedisError`` if it fails)."""
    log = logs.get_logger(component="console")
    budget = RedisBudget(client, key=budget_key(settings.redis_prefix, name),
                         capacity=settings.api_calls_per_window,
                         window=settings.api_window_seconds, log=log)
    store = RedisSnapshotStore(client, settings.redis_prefix, name, log)
    return Tenant(await budget.state(),
                  {kind: await store.metas(kind) for kind in settings.snapshot_kinds})

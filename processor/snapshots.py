"""Center snapshots: a whole center's members or guests, asked for a hundred at a time.

Zenoti's budget (~60 calls a minute per organisation) makes one point look-up per event the
product's ceiling. Most facts an event needs are *identities* that do not change with the
events we process: which guest owns user membership ``m`` and what membership it is
(``GET /v1/centers/{id}/members``), and who guest ``g`` is (``GET /v1/guests?center_id=``).
A snapshot holds those rows for one center, shared by every pod (Redis) and kept a day, so
one page of 100 serves every event of that center that names one of its rows.

When it is worth it. A snapshot costs one call per 100 rows; a lone event is cheaper with
point look-ups. A center's snapshot is loaded once ``min_demand`` events wanted it within the
hour (counted per tenant and center); below that the caller falls back to point look-ups.

Loads are single-flight across pods (a lock per tenant, center and kind) and resumable: each
page is stored as it arrives, and a load that runs out of budget keeps its place, raising
``BudgetExhausted`` so the event waits in the broker, not in memory. An event that finds
another pod loading waits there too.

Freshness. Rows name identities; the state an event reports (status, freeze, counts) comes
from the webhook itself, so a snapshot never has to be newer than an event. A row missing
from a complete snapshot (a membership sold since) triggers one incremental refresh
(``since`` the snapshot's time, as a date: Zenoti's filters take dates), at most once per
``refresh_interval``; guests' contact details are refreshed the same way when the snapshot
is older than ``refresh_interval``, and only when an event asks. Nothing runs on a timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.errors import BudgetExhausted, PermanentError, UnexpectedResponse
from processor.metrics import Metrics

Row = dict[str, Any]
KINDS = ("members", "guests")
_REFRESH_SPACING = 60.0
_BROKEN_FOR = 600.0  # a list Zenoti answers in a shape we do not know: point look-ups a while


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


# (kind, center, page number from 1, since as a wall-clock time or None) -> the page
FetchPage = Callable[[str, str, int, float | None], Awaitable[Page]]
# The organisation's center ids (``GET /v1/centers``, one call, kept a day by the caller)
ListCenters = Callable[[], Awaitable[list[str]]]
ANYWHERE = "*"  # the demand of events that name no center (a guest pass)


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
    """Where one tenant's snapshots live (``processor.snapshot_store``)."""

    async def row(self, kind: str, center: str, key: str) -> Row | None: ...

    async def locate(self, kind: str, key: str) -> str | None: ...

    async def add(self, kind: str, center: str, rows: dict[str, Row]) -> None: ...

    async def meta(self, kind: str, center: str) -> Meta | None: ...

    async def set_meta(self, kind: str, center: str, meta: Meta) -> None: ...

    async def claim(self, kind: str, center: str, seconds: float) -> bool: ...

    async def release(self, kind: str, center: str) -> None: ...

    async def demand(self, kind: str, center: str) -> int: ...


class Snapshots:
    """One tenant's center snapshots and the decision to use them."""

    def __init__(
        self, store: SnapshotStore, fetch: FetchPage, *, tenant: str, kinds: frozenset[str],
        centers: ListCenters | None = None,
        metrics: Metrics, log: FilteringBoundLogger, min_demand: int = 3,
        refresh_interval: float = 600.0, load_lock: float = 120.0, wait_hint: float = 5.0,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._centers = centers
        self._tenant = tenant
        self._kinds = kinds
        self._metrics = metrics
        self._log = log
        self._min_demand = min_demand
        self._refresh_interval = refresh_interval
        self._load_lock = load_lock
        self._wait_hint = wait_hint
        self._broken: dict[str, float] = {}  # kind -> until when its lists are not asked
        self._loads: dict[tuple[str, str], asyncio.Future[None]] = {}  # this process's

    def enabled(self, kind: str) -> bool:
        return kind in self._kinds

    async def find(self, kind: str, key: str, center: str | None) -> Found | None:
        """The row of ``key`` (a user membership or guest id): wherever a loaded snapshot has
        it, else from ``center``'s snapshot, loaded first when enough events want it.
        ``None``: use point look-ups (a lone event, a kind switched off, no center to ask, or
        a row the snapshot does not have)."""
        key = key.lower()
        if kind not in self._kinds or self._broken.get(kind, 0.0) > time.monotonic():
            return self._result(kind, "disabled", None)
        try:
            return await self._find(kind, key, center)
        except (UnexpectedResponse, PermanentError) as exc:
            # Not this event's fault, and never a reason to park it: ask point by point.
            self._broken[kind] = time.monotonic() + _BROKEN_FOR
            logs.THROTTLE.warning(self._log, "snapshot.unusable", kind=kind,
                                  tenant=self._tenant, error=str(exc)[:300])
            return self._result(kind, "unusable", None)

    async def _find(self, kind: str, key: str, center: str | None) -> Found | None:
        located = await self._store.locate(kind, key)
        center = located or center
        if center is None:
            return await self._search(kind, key)
        row = await self._store.row(kind, center, key)
        meta = await self._store.meta(kind, center)
        if row is not None and not self._stale(kind, meta):
            return self._result(kind, "hit", Found(row, center))
        return await self._fill(kind, key, center, meta)

    async def peek(self, kind: str, key: str) -> Found | None:
        """The row of ``key`` if some loaded snapshot has it; never loads, never calls."""
        key = key.lower()
        if kind not in self._kinds or self._broken.get(kind, 0.0) > time.monotonic():
            return None
        center = await self._store.locate(kind, key)
        row = None if center is None else await self._store.row(kind, center, key)
        return None if row is None or center is None else Found(row, center)

    async def _fill(self, kind: str, key: str, center: str, meta: Meta | None) -> Found | None:
        if meta is None or not meta.complete:
            if await self._store.demand(kind, center) < self._min_demand:
                return self._result(kind, "lone", None)
            await self._load(kind, center, meta)
        else:  # a row it lacks, or guests' details grown old
            await self._refresh(kind, center, meta)
        row = await self._store.row(kind, center, key)
        found = None if row is None else Found(row, center)
        return self._result(kind, "loaded" if found is not None else "missing", found)

    async def _search(self, kind: str, key: str) -> Found | None:
        """A row whose center the event does not name: once such events are frequent,
        load every center's snapshot in turn until one has it."""
        if self._centers is None or await self._store.demand(kind, ANYWHERE) < self._min_demand:
            return self._result(kind, "no_center", None)
        for center in await self._centers():
            meta = await self._store.meta(kind, center)
            if meta is None or not meta.complete:
                await self._load(kind, center, meta)
                row = await self._store.row(kind, center, key.lower())
                if row is not None:
                    return self._result(kind, "loaded", Found(row, center))
        return self._result(kind, "missing", None)

    def _stale(self, kind: str, meta: Meta | None) -> bool:
        """Guests' contact details age; membership identities do not."""
        if kind != "guests" or meta is None:
            return False
        return time.time() - max(meta.as_of, meta.refreshed_at) >= self._refresh_interval

    async def _load(self, kind: str, center: str, meta: Meta | None) -> None:
        """Load the remaining pages, once per process: events of this process that want the
        same snapshot meanwhile wait for that load rather than in the broker."""
        running = self._loads.get((kind, center))
        if running is None:
            running = asyncio.ensure_future(self._load_pages(kind, center, meta))
            self._loads[(kind, center)] = running
            running.add_done_callback(lambda _: self._loads.pop((kind, center), None))
        await asyncio.shield(running)  # a waiter's deadline does not cancel the others' load

    async def _load_pages(self, kind: str, center: str, meta: Meta | None) -> None:
        """Raise ``BudgetExhausted`` (wait in the broker) when another pod holds the load or
        the budget runs out midway, keeping the place."""
        if not await self._store.claim(kind, center, self._load_lock):
            raise BudgetExhausted(f"{kind} of center {center!r} are being loaded",
                                  retry_after=self._wait_hint)
        started = meta.as_of if meta else time.time()
        page = meta.next_page if meta else 1
        try:
            while page:
                fetched = await self._fetch(kind, center, page, None)
                await self._store.add(kind, center, fetched.rows)
                self._metrics.snapshot_pages.labels(kind=kind).inc()
                page = page + 1 if fetched.more else 0
                await self._store.set_meta(kind, center, Meta(page, started, started))
        finally:
            await self._store.release(kind, center)
        self._log.info("snapshot.loaded", kind=kind, center=center, tenant=self._tenant)

    async def _refresh(self, kind: str, center: str, meta: Meta) -> None:
        """One incremental pass (rows updated since the snapshot's time), at most one a
        minute per center and kind however many events miss meanwhile."""
        if time.time() - meta.refreshed_at < _REFRESH_SPACING:
            return
        now = time.time()
        await self._store.set_meta(kind, center, Meta(0, meta.as_of, now))
        page = 1
        while page:
            fetched = await self._fetch(kind, center, page, meta.as_of)
            await self._store.add(kind, center, fetched.rows)
            self._metrics.snapshot_pages.labels(kind=kind).inc()
            page = page + 1 if fetched.more else 0
        await self._store.set_meta(kind, center, Meta(0, now, now))

    def _result(self, kind: str, result: str, found: Found | None) -> Found | None:
        self._metrics.snapshot_lookups.labels(kind=kind, result=result).inc()
        return found

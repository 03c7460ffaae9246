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

Loads are single-flight: within a process (events wait for the running load, at most
``load_wait`` seconds, then in the broker) and across pods (a lock per tenant, center and
kind, held with a token, extended after each page, released only by its holder). They are
resumable: each page is stored as it arrives, and a load that runs out of budget keeps its
place, raising ``BudgetExhausted`` so the event waits in the broker, not in memory.

A list that fails is never the event's failure: Zenoti's 5xx or a refusal for one center
sets that center aside for a while, a list in a shape we do not know sets the kind aside; the
event then uses point look-ups (``result="unusable"`` in the metrics).

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

from structlog.typing import FilteringBoundLogger

from processor import logs
from processor.errors import (
    BudgetExhausted,
    PermanentError,
    UnexpectedResponse,
    ZenotiUnavailable,
)
from processor.metrics import Metrics
from processor.zenoti.snapshot_store import Found, Meta, Page, SnapshotStore

__all__ = ["ANYWHERE", "FetchPage", "Found", "ListCenters", "Page", "Snapshots"]

# (kind, center, page number from 1, since as a wall-clock time or None) -> the page
FetchPage = Callable[[str, str, int, float | None], Awaitable[Page]]
# The organisation's center ids (``GET /v1/centers``, one call, kept a day by the caller)
ListCenters = Callable[[], Awaitable[list[str]]]
ANYWHERE = "*"  # the demand of events that name no center (a guest pass)

_REFRESH_SPACING = 60.0
_SHAPE_BROKEN_FOR = 600.0  # a list in a shape we do not know: the kind aside this long
_CENTER_BROKEN_FOR = 60.0  # a center whose list failed (5xx, refused): aside this long


class Snapshots:
    """One tenant's center snapshots and the decision to use them."""

    def __init__(
        self, store: SnapshotStore, fetch: FetchPage, *, tenant: str, kinds: frozenset[str],
        centers: ListCenters | None = None,
        metrics: Metrics, log: FilteringBoundLogger, min_demand: int = 3,
        refresh_interval: float = 600.0, load_lock: float = 60.0, load_wait: float = 10.0,
        wait_hint: float = 5.0,
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
        self._load_wait = load_wait
        self._wait_hint = wait_hint
        # (kind, "") for a whole kind, (kind, center) for one center -> set aside until
        self._aside: dict[tuple[str, str], float] = {}
        self._loads: dict[tuple[str, str], asyncio.Future[bool]] = {}  # this process's

    async def find(self, kind: str, key: str, center: str | None) -> Found | None:
        """The row of ``key`` (a user membership or guest id): wherever a loaded snapshot has
        it, else from ``center``'s snapshot, loaded first when enough events want it.
        ``None``: use point look-ups (a lone event, a kind switched off or set aside, no
        center to ask, or a row the snapshot does not have)."""
        if kind not in self._kinds or self._set_aside(kind, ""):
            return self._result(kind, "disabled", None)
        key = key.lower()
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
        if kind not in self._kinds or self._set_aside(kind, ""):
            return None
        center = await self._store.locate(kind, key)
        row = None if center is None else await self._store.row(kind, center, key)
        return None if row is None or center is None else Found(row, center)

    async def _fill(self, kind: str, key: str, center: str, meta: Meta | None) -> Found | None:
        if meta is None or not meta.complete:
            if await self._store.demand(kind, center) < self._min_demand:
                return self._result(kind, "lone", None)
            if not await self._load(kind, center, meta):
                return self._result(kind, "unusable", None)
        elif not await self._guarded(kind, center, self._refresh(kind, center, meta)):
            return self._result(kind, "unusable", None)  # a row it lacks, or old details
        row = await self._store.row(kind, center, key)
        found = None if row is None else Found(row, center)
        return self._result(kind, "loaded" if found is not None else "missing", found)

    async def _search(self, kind: str, key: str) -> Found | None:
        """A row whose center the event does not name: once such events are frequent,
        load every center's snapshot in turn until one has it."""
        if self._centers is None or await self._store.demand(kind, ANYWHERE) < self._min_demand:
            return self._result(kind, "no_center", None)
        centers = await self._centers_or_none()
        for center in centers or ():
            meta = await self._store.meta(kind, center)
            if (meta is None or not meta.complete) and await self._load(kind, center, meta):
                row = await self._store.row(kind, center, key)
                if row is not None:
                    return self._result(kind, "loaded", Found(row, center))
        return self._result(kind, "missing" if centers is not None else "unusable", None)

    async def _centers_or_none(self) -> list[str] | None:
        assert self._centers is not None
        if self._set_aside("centers", ""):  # asked a moment ago and failed: not again yet
            return None
        try:
            return await self._centers()
        except (UnexpectedResponse, PermanentError, ZenotiUnavailable) as exc:
            self._aside_for(("centers", ""), _CENTER_BROKEN_FOR, exc)
            return None

    def _stale(self, kind: str, meta: Meta | None) -> bool:
        """Guests' contact details age; membership identities do not."""
        if kind != "guests" or meta is None:
            return False
        return time.time() - max(meta.as_of, meta.refreshed_at) >= self._refresh_interval

    async def _load(self, kind: str, center: str, meta: Meta | None) -> bool:
        """Load the remaining pages, once per process; True once loaded, False if the center
        is set aside. Events of this process wait for a running load up to ``load_wait``
        seconds, then in the broker (``BudgetExhausted``); the load goes on meanwhile."""
        if self._set_aside(kind, center):
            return False
        running = self._loads.get((kind, center))
        if running is None:
            load = self._guarded(kind, center, self._load_pages(kind, center, meta))
            running = asyncio.ensure_future(load)
            self._loads[(kind, center)] = running
            running.add_done_callback(lambda done: self._loaded(kind, center, done))
        try:
            return await asyncio.wait_for(asyncio.shield(running), self._load_wait)
        except TimeoutError:
            raise BudgetExhausted(f"{kind} of center {center!r} are being loaded",
                                  retry_after=self._wait_hint) from None

    def _loaded(self, kind: str, center: str, done: asyncio.Future[bool]) -> None:
        self._loads.pop((kind, center), None)
        if not done.cancelled():
            done.exception()  # retrieved: each waiter sees it; none may be left to

    async def _guarded(self, kind: str, center: str, work: Awaitable[None]) -> bool:
        """Run a load or refresh; a list that fails sets the center (or, for a shape we do
        not know, the kind) aside and answers False. Budget waits propagate."""
        try:
            await work
        except UnexpectedResponse as exc:
            self._aside_for((kind, ""), _SHAPE_BROKEN_FOR, exc)
            return False
        except (PermanentError, ZenotiUnavailable) as exc:
            self._aside_for((kind, center), _CENTER_BROKEN_FOR, exc)
            return False
        return True

    async def _load_pages(self, kind: str, center: str, meta: Meta | None) -> None:
        """Raise ``BudgetExhausted`` (wait in the broker) when another pod holds the load or
        the budget runs out midway, keeping the place."""
        token = await self._store.claim(kind, center, self._load_lock)
        if token is None:
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
                if page and not await self._store.extend(kind, center, token, self._load_lock):
                    raise BudgetExhausted(f"{kind} of center {center!r}: load taken over",
                                          retry_after=self._wait_hint)
        finally:
            await self._store.release(kind, center, token)
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

    def _set_aside(self, kind: str, center: str) -> bool:
        return self._aside.get((kind, center), 0.0) > time.monotonic()

    def _aside_for(self, what: tuple[str, str], seconds: float, exc: Exception) -> None:
        # Not the event's fault, and never a reason to park it: point look-ups meanwhile.
        self._aside[what] = time.monotonic() + seconds
        logs.THROTTLE.warning(self._log, "snapshot.unusable", kind=what[0],
                              center=what[1] or None, tenant=self._tenant,
                              error=str(exc)[:300], aside_seconds=seconds)

    def _result(self, kind: str, result: str, found: Found | None) -> Found | None:
        self._metrics.snapshot_lookups.labels(kind=kind, result=result).inc()
        return found

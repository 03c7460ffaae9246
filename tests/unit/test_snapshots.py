"""Center snapshots: when they are loaded, what they answer, and what they leave to point
look-ups; on the in-process store and on the real Redis alike."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from processor.errors import BudgetExhausted, ZenotiUnavailable
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.zenoti.snapshot_store import (
    MemorySnapshotStore,
    Meta,
    Page,
    RedisSnapshotStore,
    SnapshotStore,
)
from processor.zenoti.snapshots import Snapshots

PAGE = 100


class Center:
    """A center's list as Zenoti pages it: ``rows`` ids, 100 a page; counts the pages asked."""

    def __init__(self, rows: int, *, budget: int | None = None) -> None:
        self.rows = {f"m{i:05d}": {"id": f"m{i:05d}", "guest": {"id": f"g{i}"}}
                     for i in range(rows)}
        self.asked: list[tuple[str, int, float | None]] = []
        self.budget = budget

    async def fetch(self, kind: str, center: str, page: int, since: float | None) -> Page:
        if self.budget is not None:
            if self.budget == 0:
                raise BudgetExhausted("no token", retry_after=1.0)
            self.budget -= 1
        self.asked.append((center, page, since))
        ids = sorted(self.rows)[(page - 1) * PAGE: page * PAGE]
        return Page({i: self.rows[i] for i in ids}, more=page * PAGE < len(self.rows))


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SnapshotStore]:
    if request.param == "memory":
        yield MemorySnapshotStore()
        return
    if not redis_up():
        if os.environ.get("CI"):  # CI starts Redis: without it this store went untested
            pytest.fail("no Redis on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379")
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test-snap-{uuid.uuid4().hex[:8]}"
    yield RedisSnapshotStore(client, prefix, "acme", get_logger())
    keys = [key async for key in client.scan_iter(f"{prefix}:*", count=10_000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def snapshots(store: SnapshotStore, center: Center, min_demand: int = 3) -> Snapshots:
    return Snapshots(store, center.fetch, tenant="acme", kinds=frozenset({"members", "guests"}),
                     metrics=Metrics(), log=get_logger(), min_demand=min_demand)


async def test_a_lone_event_is_left_to_point_look_ups(store: SnapshotStore) -> None:
    center = Center(250)
    snap = snapshots(store, center)
    assert await snap.find("members", "m00007", "c1") is None
    assert center.asked == []


async def test_a_busy_center_is_loaded_once_and_then_answers_every_row(
    store: SnapshotStore,
) -> None:
    center = Center(250)
    snap = snapshots(store, center)
    for _ in range(2):
        assert await snap.find("members", "m00007", "c1") is None
    found = await snap.find("members", "M00007", "c1")  # the third event: worth a load
    assert found is not None and found.row["guest"] == {"id": "g7"} and found.center == "c1"
    assert [page for _, page, _ in center.asked] == [1, 2, 3]
    for i in range(0, 250, 17):
        assert await snap.find("members", f"m{i:05d}", "c1") is not None
    assert len(center.asked) == 3  # no further call for any of them


async def test_a_row_is_found_without_its_center_once_some_snapshot_has_it(
    store: SnapshotStore,
) -> None:
    center = Center(120)
    snap = snapshots(store, center, min_demand=1)
    assert await snap.find("members", "m00001", "c9") is not None
    elsewhere = await snap.find("members", "m00110", None)
    assert elsewhere is not None and elsewhere.center == "c9"
    assert await snap.find("members", "m99999", None) is None  # nowhere: point look-ups
    assert await snap.peek("members", "m00111") is not None
    assert await snap.peek("members", "m99999") is None


async def test_a_load_out_of_budget_keeps_its_place_and_resumes(store: SnapshotStore) -> None:
    center = Center(450, budget=2)
    snap = snapshots(store, center, min_demand=1)
    with pytest.raises(BudgetExhausted):
        await snap.find("members", "m00420", "c1")
    assert await store.meta("members", "c1") == Meta(3, *(await _times(store)))
    center.budget = None
    assert await snap.find("members", "m00420", "c1") is not None
    assert [page for _, page, _ in center.asked] == [1, 2, 3, 4, 5]


async def test_another_pod_loading_sends_the_event_to_wait_in_the_broker(
    store: SnapshotStore,
) -> None:
    center = Center(150)
    assert await store.claim("members", "c1", 30)
    snap = snapshots(store, center, min_demand=1)
    with pytest.raises(BudgetExhausted, match="being loaded"):
        await snap.find("members", "m00001", "c1")
    assert center.asked == []


async def test_a_row_missing_from_a_complete_snapshot_costs_one_refresh_a_minute(
    store: SnapshotStore,
) -> None:
    center = Center(50)
    snap = snapshots(store, center, min_demand=1)
    assert await snap.find("members", "m00001", "c1") is not None
    meta = await store.meta("members", "c1")
    assert meta is not None
    await store.set_meta("members", "c1", Meta(0, meta.as_of - 120, meta.refreshed_at - 120))
    center.rows["new-sale"] = {"id": "new-sale", "guest": {"id": "g-new"}}
    assert await snap.find("members", "new-sale", "c1") is not None
    assert center.asked[-1][2] is not None  # asked for changes since the snapshot's time
    asked = len(center.asked)
    for _ in range(5):
        assert await snap.find("members", "never-sold", "c1") is None
    assert len(center.asked) == asked  # refreshed a moment ago: no more calls


async def test_a_kind_switched_off_is_never_loaded(store: SnapshotStore) -> None:
    center = Center(10)
    snap = Snapshots(store, center.fetch, tenant="acme", kinds=frozenset({"guests"}),
                     metrics=Metrics(), log=get_logger(), min_demand=1)
    assert await snap.find("members", "m00001", "c1") is None
    assert center.asked == []


async def _times(store: SnapshotStore) -> tuple[float, float]:
    meta = await store.meta("members", "c1")
    assert meta is not None
    return meta.as_of, meta.refreshed_at


async def test_events_naming_no_center_load_every_center_in_turn_once_frequent(
    store: SnapshotStore,
) -> None:
    centers = {"c1": Center(150), "c2": Center(0)}
    centers["c2"].rows = {"p-1": {"id": "p-1", "guest": {"id": "g-p"}}}

    async def fetch(kind: str, center: str, page: int, since: float | None) -> Page:
        return await centers[center].fetch(kind, center, page, since)

    async def listed() -> list[str]:
        return sorted(centers)

    snap = Snapshots(store, fetch, tenant="acme", kinds=frozenset({"members"}),
                     centers=listed, metrics=Metrics(), log=get_logger(), min_demand=2)
    assert await snap.find("members", "p-1", None) is None  # a lone one: point look-ups
    found = await snap.find("members", "p-1", None)
    assert found is not None and found.center == "c2"
    assert len(centers["c1"].asked) == 2 and len(centers["c2"].asked) == 1
    again = await snap.find("members", "m00003", None)
    assert again is not None and again.center == "c1"
    assert len(centers["c1"].asked) == 2  # already loaded: no call


async def test_only_the_holder_of_a_load_lock_can_extend_or_release_it(
    store: SnapshotStore,
) -> None:
    token = await store.claim("members", "c1", 30)
    assert token is not None
    assert await store.claim("members", "c1", 30) is None
    assert not await store.extend("members", "c1", "not-the-token", 30)
    await store.release("members", "c1", "not-the-token")
    assert await store.claim("members", "c1", 30) is None  # still held
    assert await store.extend("members", "c1", token, 30)
    await store.release("members", "c1", token)
    assert await store.claim("members", "c1", 30) is not None


async def test_a_snapshot_whose_rows_are_gone_is_no_snapshot(store: SnapshotStore) -> None:
    await store.add("members", "c1", {"m1": {"id": "m1"}})
    await store.set_meta("members", "c1", Meta(0, 1.0, 1.0))
    assert await store.meta("members", "c1") is not None
    if isinstance(store, RedisSnapshotStore):  # evicted by Redis under memory pressure
        await store._redis.delete(store._key("members", "c.c1"))
        assert await store.meta("members", "c1") is None


async def test_a_failing_list_sets_the_center_aside_and_the_event_uses_point_look_ups(
    store: SnapshotStore,
) -> None:
    calls = 0

    async def failing(kind: str, center: str, page: int, since: float | None) -> Page:
        nonlocal calls
        calls += 1
        raise ZenotiUnavailable("Zenoti answered 503")

    snap = Snapshots(store, failing, tenant="acme", kinds=frozenset({"members"}),
                     metrics=Metrics(), log=get_logger(), min_demand=1)
    assert await snap.find("members", "m1", "c1") is None
    assert await snap.find("members", "m2", "c1") is None
    assert calls == 1  # set aside: not asked again at once


async def test_an_event_waits_for_a_running_load_a_bounded_time_then_in_the_broker(
    store: SnapshotStore,
) -> None:
    gate = asyncio.Event()

    async def slow(kind: str, center: str, page: int, since: float | None) -> Page:
        await gate.wait()
        return Page({"m1": {"id": "m1"}}, more=False)

    snap = Snapshots(store, slow, tenant="acme", kinds=frozenset({"members"}),
                     metrics=Metrics(), log=get_logger(), min_demand=1, load_wait=0.2)
    with pytest.raises(BudgetExhausted, match="being loaded"):
        await snap.find("members", "m1", "c1")
    gate.set()  # the load goes on without the event that started it
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(BudgetExhausted):  # its last writes still under way
                found = await snap.find("members", "m1", "c1")
                break
            await asyncio.sleep(0.1)
    assert found is not None and found.center == "c1"

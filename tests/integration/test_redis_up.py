"""``zenoti_events_redis_up{store}`` follows a real Redis that goes away and comes back: a
private ``redis-server`` on a port of its own, started, killed (SIGKILL) and started again by the
test (never the shared one on 6379). Set by the stores' own calls: budget, snapshots, dedupe."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from processor.dev.ports import listening, quiet_port
from processor.metrics import Metrics
from processor.settings import Settings
from processor.wiring import build_worker
from processor.worker.dedupe import RedisDeduplicator
from processor.zenoti.redis_up import RedisUp
from processor.zenoti.shared_budget import RedisBudget
from processor.zenoti.snapshot_store import RedisSnapshotStore

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")]
STORES = ("budget", "snapshots", "dedupe")


class Server:
    """A redis-server of this test alone on ``port``: nothing saved, killed at the end."""

    def __init__(self) -> None:
        self.port = quiet_port()  # found free again after the restart
        assert self.port != 6379
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
             str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not listening(self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def server() -> Iterator[Server]:
    started = Server()
    started.start()
    try:
        yield started
    finally:
        started.kill()


def up(metrics: Metrics, store: str) -> float | None:
    return metrics.registry.get_sample_value("zenoti_events_redis_up", {"store": store})


async def touch(budget: RedisBudget, snapshots: RedisSnapshotStore,
                dedupe: RedisDeduplicator) -> None:
    """One real call of each store (each degrades quietly when Redis is away)."""
    await budget.acquire(max_wait=0.5)
    await snapshots.row("members", "c1", "g1")
    await dedupe.seen("k")


async def test_redis_up_follows_a_redis_that_goes_away_and_comes_back(server: Server) -> None:
    metrics = Metrics()
    client = aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1,
                            socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    log = structlog.get_logger()
    child = {s: RedisUp(metrics.redis_up, s) for s in STORES}
    budget = RedisBudget(client, key="t:budget:x", capacity=60, window=60, log=log,
                         up=child["budget"])
    snapshots = RedisSnapshotStore(client, "t", "x", log, up=child["snapshots"])
    dedupe = RedisDeduplicator(client, "t:done", 60, log, up=child["dedupe"])
    try:
        assert [up(metrics, s) for s in STORES] == [None] * 3  # no call yet: no claim
        await touch(budget, snapshots, dedupe)
        assert [up(metrics, s) for s in STORES] == [1.0] * 3
        server.kill()
        await touch(budget, snapshots, dedupe)
        assert [up(metrics, s) for s in STORES] == [0.0] * 3
        server.start()
        await touch(budget, snapshots, dedupe)
        assert [up(metrics, s) for s in STORES] == [1.0] * 3
    finally:
        await client.aclose()


async def test_an_error_redis_answers_with_is_not_unreachable(server: Server) -> None:
    metrics = Metrics()
    client = aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1)
    dedupe = RedisDeduplicator(client, "t:done", 60, structlog.get_logger(),
                               up=RedisUp(metrics.redis_up, "dedupe"))
    try:
        await client.set("t:done:k", b"x")
        await client.config_set("maxmemory", "1")  # every write now answered with OOM
        await dedupe.remember("other")
        assert up(metrics, "dedupe") == 1.0
    finally:
        with contextlib.suppress(Exception):
            await client.config_set("maxmemory", "0")
        await client.aclose()


async def test_the_worker_as_built_reports_its_stores(server: Server) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{server.port}/0", api_key="k",
                        allow_unsigned=True)
    process = build_worker(settings, [], metrics=Metrics())
    try:
        await process.done.seen("k")
        assert up(process.metrics, "dedupe") == 1.0
        server.kill()
        await process.done.seen("k")
        assert up(process.metrics, "dedupe") == 0.0
        assert b'zenoti_events_redis_up{store="dedupe"} 0.0' in process.metrics.render()
    finally:
        await process.aclose()


async def test_credentials_redis_refuses_read_0(server: Server) -> None:
    """A real WRONGPASS (an AuthenticationError, a ConnectionError subclass in redis-py): Redis
    answered, but the store cannot use it, so 0, as in an outage (the decision
    ``processor.zenoti.redis_up`` and docs/metrics.md state)."""
    metrics = Metrics()
    admin = aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1)
    wrong = aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1,
                           password="not-it", retry=Retry(NoBackoff(), 0))
    dedupe = RedisDeduplicator(wrong, "t:done", 60, structlog.get_logger(),
                               up=RedisUp(metrics.redis_up, "dedupe"))
    try:
        await admin.config_set("requirepass", "the-password")
        await dedupe.seen("k")
        assert up(metrics, "dedupe") == 0.0
    finally:
        await wrong.aclose()
        with contextlib.suppress(Exception):
            await admin.aclose()

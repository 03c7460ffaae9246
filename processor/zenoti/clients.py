"""Every tenant's ``ZenotiClient``, with the budget, cache and snapshots the deployment shares.

With ``redis_url`` set, each tenant's budget (``RedisBudget``), the API cache (``RedisCache``)
and the center snapshots (``RedisSnapshotStore``) are shared by every worker process and pod.
Without it they live in the process (``TokenBucket``, ``MemoryCache``, ``MemorySnapshotStore``),
correct for a single worker only: each in-process budget says so (``budget.in_process``) when
it is made, which for the worker is at start-up (``processor.wiring`` makes every tenant's
client then). ``api_cache_enabled`` off means no cache at all, an empty ``snapshot_kinds``
no snapshots.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from structlog.typing import FilteringBoundLogger

from processor.errors import PermanentError
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import Settings
from processor.tracing.publishing import instrument_http
from processor.zenoti.budget import Budget, TokenBucket
from processor.zenoti.cache import ApiCache, MemoryCache, NullCache, RedisCache
from processor.zenoti.client import ZenotiClient
from processor.zenoti.redis_up import RedisUp
from processor.zenoti.shared_budget import RedisBudget, budget_key
from processor.zenoti.snapshot_store import MemorySnapshotStore, RedisSnapshotStore, SnapshotStore
from processor.zenoti.snapshots import Snapshots

__all__ = ["ZenotiClients"]


class ZenotiClients:
    """Every tenant's ``ZenotiClient``, made on first use and kept, sharing one pool.

    ``http`` may be injected (a ``MockTransport`` in tests): its caller owns it, so ``aclose``
    leaves it open. ``budget_factory(tenant)`` makes each tenant's budget: by default one
    ``RedisBudget`` per tenant shared by every pod when ``redis_url`` is set, else an
    in-process ``TokenBucket``, of ``api_calls_per_window`` per ``api_window_seconds``.
    ``cache`` replaces the default one (Redis, memory, or none when the cache is disabled),
    one for every tenant (its keys start with the tenant); ``aclose`` closes it either way.
    ``log`` receives the budgets', cache's and snapshots' warnings.

    Each client's snapshots fetch their pages (and the centers list) through that client, not
    through an event's view of it (``ZenotiClient.bound``): those calls spend the tenant's
    budget but count in no event's ``calls``; ``zenoti_events_snapshot_pages_total`` counts
    the pages.

    With ``tracer_provider`` (tracing on), every request of the pool is a span
    (``processor.tracing.publishing.instrument_http``), given one or made here."""

    def __init__(
        self, settings: Settings, metrics: Metrics, *, http: httpx.AsyncClient | None = None,
        budget_factory: Callable[[str], Budget] | None = None, cache: ApiCache | None = None,
        log: FilteringBoundLogger | None = None, tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._log = log or get_logger(component="zenoti")
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(
            base_url=settings.zenoti_api_url, timeout=settings.zenoti_api_timeout
        )
        if tracer_provider is not None:
            instrument_http(self._http, tracer_provider)
        url = settings.redis_url.get_secret_value() if settings.redis_url else None
        # Waits (bounded) for a free connection rather than failing at once past 100 (the
        # default pool's cap: a worker with 4 handlers x prefetch 64 has more in flight).
        self._redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            url, socket_timeout=2.0, max_connections=256, timeout=2.0)) if url else None
        self._cache = cache or self._default_cache()
        self._budget_factory = budget_factory or self._default_budget
        self._clients: dict[str, ZenotiClient] = {}

    def for_tenant(self, name: str) -> ZenotiClient:
        """The client of tenant ``name``, made (with its budget and snapshots) on the first
        ask; ``PermanentError`` if no such tenant is configured or it has no API key, so that
        its messages are dead-lettered (and replayable) rather than retried forever."""
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._client(name)
        return client

    async def aclose(self) -> None:
        """Close the connection pool if this object made it, the cache (made or given), and
        the Redis connection if there is one."""
        if self._owns_http:
            await self._http.aclose()
        await self._cache.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    def _default_cache(self) -> ApiCache:
        """A ``NullCache`` (nothing kept) when ``api_cache_enabled`` is off, else Redis when
        there is one, else memory."""
        if not self._settings.api_cache_enabled:
            return NullCache()
        if self._redis is None:
            return MemoryCache()
        return RedisCache(self._redis, f"{self._settings.redis_prefix}:api", self._log)

    def _default_budget(self, tenant: str) -> Budget:
        """``tenant``'s budget in Redis, shared by every pod; else in this process, with a
        warning that it is right for one process only."""
        size = (self._settings.api_calls_per_window, self._settings.api_window_seconds)
        if self._redis is None:
            self._log.warning("budget.in_process", tenant=tenant,
                              detail="no redis_url: the API budget is correct for one process only")
            return TokenBucket(*size)
        key = budget_key(self._settings.redis_prefix, tenant)
        return RedisBudget(self._redis, key=key, capacity=size[0], window=size[1], log=self._log,
                           up=RedisUp(self._metrics.redis_up, "budget"))

    def _client(self, name: str) -> ZenotiClient:
        """A new client of tenant ``name``, with its own budget and snapshots (see
        ``for_tenant`` for the ``PermanentError``)."""
        tenant = self._settings.all_tenants().get(name)
        if tenant is None or not tenant.api_key.get_secret_value():
            raise PermanentError(f"tenant {name!r} has no Zenoti API key configured")
        client = ZenotiClient(
            self._http, tenant=name, api_key=tenant.api_key,
            budget=self._budget_factory(name), metrics=self._metrics,
            retries=self._settings.api_retries, backoff=self._settings.api_retry_backoff,
            short_wait=self._settings.api_short_wait, cache=self._cache,
            deadline=self._settings.zenoti_call_deadline,
        )
        client.snapshots = self._snapshots(name, client)
        return client

    def _snapshots(self, tenant: str, client: ZenotiClient) -> Snapshots | None:
        """The tenant's center snapshots of ``snapshot_kinds`` (``None`` when that is empty),
        in Redis when there is one, else in this process; pages are fetched through
        ``client``."""
        kinds = frozenset(self._settings.snapshot_kinds)
        if not kinds:
            return None
        store: SnapshotStore = (
            RedisSnapshotStore(self._redis, self._settings.redis_prefix, tenant, self._log,
                               up=RedisUp(self._metrics.redis_up, "snapshots"))
            if self._redis is not None else MemorySnapshotStore())
        return Snapshots(
            store, client.snapshot_page, tenant=tenant, kinds=kinds, centers=client.center_ids,
            metrics=self._metrics, log=self._log, min_demand=self._settings.snapshot_min_demand,
            refresh_interval=self._settings.snapshot_refresh_seconds,
        )

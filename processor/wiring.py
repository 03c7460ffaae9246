"""The long-running processes, assembled from ``Settings``: ingress, worker, topology.

Each ``run_*`` returns when ``stop`` is set, after a graceful shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel
from aiohttp import web
from structlog.typing import FilteringBoundLogger

from processor.broker import topology
from processor.broker.publisher import ConfirmedPublisher
from processor.errors import ConfigError
from processor.ingress.app import Ingress
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.serving import probes
from processor.settings import Settings
from processor.worker import plugins
from processor.worker.consumer import Worker
from processor.worker.dedupe import Deduplicator, make_deduplicator
from processor.worker.dispatch import Dispatcher
from processor.worker.plugins import LoadedHandler
from processor.worker.retry import RetryPolicy
from processor.zenoti.clients import ZenotiClients


def bindings_of(settings: Settings, loaded: Sequence[LoadedHandler]) -> list[topology.Binding]:
    """The queue bindings of ``loaded`` handlers, after the settings' overrides."""
    return topology.bindings_for(
        {h.name: h.cls.event_types for h in loaded}, settings.handler_event_types
    )


async def declare(
    channel: AbstractChannel, settings: Settings, bindings: Sequence[topology.Binding]
) -> None:
    """Declare the topology as ``settings`` shape it (retry tiers, delivery limit)."""
    await topology.declare(channel, bindings, retry_tiers=settings.retry_tiers,
                           delivery_limit=settings.delivery_limit)


async def declare_topology(settings: Settings) -> list[topology.Binding]:
    """Declare the whole topology once and return the bindings declared."""
    bindings = bindings_of(settings, plugins.discover())
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    async with connection, connection.channel() as channel:
        await declare(channel, settings, bindings)
    return bindings


async def run_ingress(settings: Settings, stop: asyncio.Event) -> None:
    """Serve deliveries until ``stop``; then turn unready, drain, and close."""
    log = get_logger(component="ingress")
    metrics = Metrics()
    check_signing(settings, log)
    bindings = bindings_of(settings, plugins.discover())
    publisher = ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="ingress",
        on_connect=lambda channel: declare(channel, settings, bindings),
        max_delay=settings.reconnect_max_delay, max_message_size=settings.broker_max_message_size,
        late_confirm_wait=settings.late_confirm_wait,
        late_confirm_max_watchers=settings.late_confirm_max_watchers,
        late_confirm_max_bytes=settings.late_confirm_max_bytes,
    )
    try:
        await publisher.start()  # a TopologyMismatch met at once ends the process here
    except ConfigError:
        await publisher.close()
        raise
    accepted = _deduplicator(settings, "ingress", log)
    ingress = Ingress(settings, publisher, metrics, log, accepted)
    runner = await probes.serve(
        ingress.app(), settings.ingress_host, settings.ingress_port,
        probes.Limits(header_timeout=settings.ingress_header_timeout,
                      max_connections=settings.ingress_max_connections,
                      probe_connections=settings.ingress_probe_connections,
                      shutdown_grace=settings.ingress_shutdown_grace),
        metrics,
    )
    log.info("ingress.listening", port=settings.ingress_port, ready=publisher.ready)
    try:
        await publisher.until_stopped(stop)  # or a TopologyMismatch met on a reconnection
    finally:
        ingress.draining = True  # /readyz answers 503 so load balancers stop sending
        log.info("ingress.draining", seconds=settings.ingress_drain_seconds)
        await asyncio.sleep(settings.ingress_drain_seconds)
        await runner.cleanup()  # in-flight requests get ingress_shutdown_grace, no more
        await publisher.close()
        await accepted.aclose()
        log.info("ingress.stopped")


async def run_worker(settings: Settings, stop: asyncio.Event, enabled: Sequence[str] = ()) -> None:
    """Consume the enabled handlers' queues (all installed if none) until ``stop``."""
    log = get_logger(component="worker")
    metrics = Metrics()
    loaded = plugins.discover(enabled or None)
    publisher = ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="worker-publisher",
        max_delay=settings.reconnect_max_delay, max_message_size=settings.broker_max_message_size,
    )
    clients = ZenotiClients(settings, metrics)
    done = _deduplicator(settings, "done", log)
    dispatchers = [_dispatcher(settings, h, publisher, clients, done, metrics, log)
                   for h in loaded]
    worker = Worker(settings, dispatchers, bindings_of(settings, loaded), publisher, log)
    await publisher.start()
    app = _probe_app(metrics, lambda: worker.ready)
    runner = await probes.serve(app, settings.ingress_host, settings.worker_metrics_port)
    log.info("worker.starting", handlers=[h.name for h in loaded])
    try:
        await worker.run(stop)
    finally:
        await runner.cleanup()
        await publisher.close()
        await clients.aclose()
        await done.aclose()


def _dispatcher(
    settings: Settings, loaded: LoadedHandler, publisher: ConfirmedPublisher,
    clients: ZenotiClients, done: Deduplicator, metrics: Metrics, log: FilteringBoundLogger,
) -> Dispatcher:
    retry = RetryPolicy(loaded.name, settings.retry_tiers, settings.retry_limits(loaded.name),
                        clock_skew=settings.retry_clock_skew, log=log)
    return Dispatcher(
        loaded.cls(), publisher=publisher, clients=clients,
        tenants=frozenset(settings.all_tenants()), retry=retry, done=done, metrics=metrics,
        log=log, confirm_timeout=settings.confirm_timeout,
        handler_timeout=settings.handler_timeout,
    )


def _deduplicator(settings: Settings, namespace: str, log: FilteringBoundLogger) -> Deduplicator:
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return make_deduplicator(url, f"{settings.redis_prefix}:{namespace}",
                             settings.dedupe_window_seconds,
                             settings.dedupe_memory_keys, log)


def _probe_app(metrics: Metrics, ready: Callable[[], bool]) -> web.Application:
    app = web.Application()
    probes.add_routes(app, metrics, ready)
    return app


def check_signing(settings: Settings, log: FilteringBoundLogger) -> None:
    """Refuse to serve a tenant without webhook secrets (anyone could forge its events, and
    with an API key they would be enriched with it) unless ``allow_unsigned`` says so."""
    unsigned = settings.unsigned_tenants()
    if unsigned and not settings.allow_unsigned:
        raise ConfigError(
            f"tenant(s) {', '.join(unsigned)} have no webhook secret and would accept forged "
            "deliveries: set their WEBHOOK_SECRETS, or ALLOW_UNSIGNED=true for a demo or test")
    for name in unsigned:
        log.warning("tenant.unsigned", tenant=name,
                    detail="ALLOW_UNSIGNED: unsigned deliveries are accepted and counted")

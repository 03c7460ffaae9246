"""The long-running processes, assembled from ``Settings``: ingress, worker, topology.

Each ``run_*`` returns when ``stop`` is set, after a graceful shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import aio_pika
from aiohttp import web
from structlog.typing import FilteringBoundLogger

from processor import plugins, probes, topology
from processor.dispatch import Dispatcher
from processor.ingress import Ingress
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.publisher import ConfirmedPublisher
from processor.settings import Settings
from processor.worker import Worker
from processor.zenoti import ZenotiClients


def installed_bindings(settings: Settings, enabled: Sequence[str] | None = None) -> list[
    topology.Binding
]:
    """The queue bindings of the installed (or ``enabled``) handlers, after overrides."""
    loaded = plugins.discover(enabled)
    return topology.bindings_for(
        {h.name: h.cls.event_types for h in loaded}, settings.handler_event_types
    )


async def declare_topology(settings: Settings) -> list[topology.Binding]:
    """Declare the whole topology once and return the bindings declared."""
    bindings = installed_bindings(settings)
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    async with connection, connection.channel() as channel:
        await topology.declare(channel, bindings)
    return bindings


async def run_ingress(settings: Settings, stop: asyncio.Event) -> None:
    """Serve deliveries until ``stop``; in-flight requests finish before the broker closes."""
    log = get_logger(component="ingress")
    metrics = Metrics()
    _warn_unsigned(settings, log)
    bindings = installed_bindings(settings)
    publisher = ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="ingress",
        on_connect=lambda channel: topology.declare(channel, bindings),
        max_delay=settings.reconnect_max_delay,
    )
    await publisher.start()
    ingress = Ingress(settings, publisher, metrics, log)
    runner = await probes.serve(ingress.app(), settings.ingress_host, settings.ingress_port)
    log.info("ingress.listening", port=settings.ingress_port, ready=publisher.ready)
    await stop.wait()
    log.info("ingress.stopping")
    await runner.cleanup()
    await publisher.close()


async def run_worker(settings: Settings, stop: asyncio.Event, enabled: Sequence[str] = ()) -> None:
    """Consume the enabled handlers' queues (all installed if none) until ``stop``."""
    log = get_logger(component="worker")
    metrics = Metrics()
    loaded = plugins.discover(enabled or None)
    bindings = topology.bindings_for(
        {h.name: h.cls.event_types for h in loaded}, settings.handler_event_types
    )
    publisher = ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="worker-publisher",
        max_delay=settings.reconnect_max_delay,
    )
    clients = ZenotiClients(settings, metrics)
    tenants = frozenset(settings.all_tenants())
    dispatchers = [
        Dispatcher(h.cls(), publisher=publisher, clients=clients, tenants=tenants, metrics=metrics,
                   log=log, confirm_timeout=settings.confirm_timeout)
        for h in loaded
    ]
    worker = Worker(settings, dispatchers, bindings, publisher, log)
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


def _probe_app(metrics: Metrics, ready: Callable[[], bool]) -> web.Application:
    app = web.Application()
    probes.add_routes(app, metrics, ready)
    return app


def _warn_unsigned(settings: Settings, log: FilteringBoundLogger) -> None:
    for name, tenant in settings.all_tenants().items():
        if not tenant.webhook_secrets:
            log.warning("tenant.unsigned", tenant=name,
                        detail="no webhook secret configured: unsigned deliveries are accepted")

"""The long-running processes, assembled from ``Settings``: ingress, worker, topology.

``build_ingress`` and ``build_worker`` assemble a process without starting it: no connection
is made, and what a part says when made (a start-up warning) is said then. Every part a test
would otherwise assemble by hand is a keyword argument, a seam: the metrics, the log, the
publisher, the de-duplicator, the Zenoti clients (with their transport, budgets and cache),
and, for the worker, the ``Dispatcher`` class of a handler. The worker's per-tenant API
budgets are made at build time, so a worker without Redis says so at start-up, not at its
first event.

A built process's ``serve(stop)`` starts it, serves until ``stop`` is set, shuts down
gracefully and closes every part it holds, made or given; ``aclose()`` closes them without
serving. ``run_ingress`` and ``run_worker`` are the commands: build, then serve.

Tracing (``processor.tracing``) is made at build time when the ``OTEL_*`` settings ask for it
(a seam too: ``tracing=``), handed to the ingress, the dispatchers and the Zenoti clients, and
flushed when the process closes, within ``tracing_flush_seconds``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel
from aiohttp import web
from opentelemetry.trace import Tracer
from structlog.typing import FilteringBoundLogger

from processor.broker import topology
from processor.broker.connect import connect
from processor.broker.publisher import ConfirmedPublisher
from processor.broker.stream import Retention
from processor.errors import ConfigError
from processor.handler import Handler
from processor.ingress.app import Ingress
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.ops import policies
from processor.serving import probes
from processor.serving.httpserver import Server
from processor.settings import Settings
from processor.spool.forwarder import Forwarding
from processor.spool.spool import Spool
from processor.tracing import Tracing
from processor.tracing import start as start_tracing
from processor.worker import plugins
from processor.worker.consumer import Worker
from processor.worker.dedupe import Deduplicator, make_deduplicator
from processor.worker.dispatch import Dispatcher
from processor.worker.retry import RetryPolicy
from processor.zenoti.clients import ZenotiClients
from processor.zenoti.redis_up import RedisUp


@dataclass
class IngressProcess:
    """An ingress built by ``build_ingress``, not yet started, and the parts it holds."""

    settings: Settings
    ingress: Ingress
    publisher: ConfirmedPublisher
    accepted: Deduplicator
    metrics: Metrics
    log: FilteringBoundLogger
    spool: Spool | None = None
    tracing: Tracing | None = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve deliveries until ``stop``; then turn unready, drain, and close. Raises the
        ``ConfigError`` (a ``TopologyMismatch``, a spool directory in use) met at start-up
        or on a reconnection. A spool left by an earlier process is forwarded first."""
        settings = self.settings
        forwarding = Forwarding(self.spool, self.publisher, settings, self.log)
        try:
            await self.publisher.start()  # a TopologyMismatch met at once ends the process here
            await forwarding.start()
            server = await probes.serve(
                self.ingress.app(), settings.ingress_host, settings.ingress_port,
                _ingress_limits(settings), self.metrics)
        except BaseException:
            await self.aclose()
            raise
        self.log.info("ingress.listening", port=server.port, ready=self.publisher.ready)
        try:
            await self.publisher.until_stopped(stop)  # or a TopologyMismatch on a reconnection
        finally:
            await self._drain(server, forwarding)

    async def aclose(self) -> None:
        """Close the spool, the publisher and the de-duplicator (``serve`` does, when it
        ends)."""
        if self.spool is not None and self.spool.opened:
            await self.spool.close()
        await self.publisher.close()
        await self.accepted.aclose()
        if self.tracing is not None:
            await self.tracing.shutdown(self.settings.tracing_flush_seconds)

    async def _drain(self, server: Server, forwarding: Forwarding) -> None:
        self.ingress.draining = True  # /readyz answers 503 so load balancers stop sending
        self.log.info("ingress.draining", seconds=self.settings.ingress_drain_seconds)
        await asyncio.sleep(self.settings.ingress_drain_seconds)
        await server.cleanup()  # in-flight requests get ingress_shutdown_grace, no more
        await forwarding.finish()  # what it cannot forward in spool_drain_seconds stays on disk
        await self.aclose()
        self.log.info("ingress.stopped")


@dataclass
class WorkerProcess:
    """A worker built by ``build_worker``, not yet started, and the parts it holds."""

    settings: Settings
    worker: Worker
    dispatchers: list[Dispatcher]
    publisher: ConfirmedPublisher
    clients: ZenotiClients
    done: Deduplicator
    metrics: Metrics
    log: FilteringBoundLogger
    tracing: Tracing | None = None

    @property
    def ready(self) -> bool:
        """Consuming every queue, with a publisher connected (what /readyz answers)."""
        return self.worker.ready

    async def serve(self, stop: asyncio.Event) -> None:
        """Consume until ``stop``, with the probes and metrics on ``worker_metrics_port``;
        then drain and close."""
        try:
            await self.publisher.start()
            app = _probe_app(self.metrics, lambda: self.worker.ready)
            server = await probes.serve(app, self.settings.ingress_host,
                                        self.settings.worker_metrics_port)
        except BaseException:
            await self.aclose()
            raise
        self.log.info("worker.starting", handlers=[d.handler.name for d in self.dispatchers])
        try:
            await self.worker.run(stop)
        finally:
            await server.cleanup()
            await self.aclose()

    async def aclose(self) -> None:
        """Close the publisher, the Zenoti clients and the de-duplicator (``serve`` does)."""
        await self.publisher.close()
        await self.clients.aclose()
        await self.done.aclose()
        if self.tracing is not None:
            await self.tracing.shutdown(self.settings.tracing_flush_seconds)


def build_ingress(
    settings: Settings, *, bindings: Sequence[topology.Binding] | None = None,
    metrics: Metrics | None = None, log: FilteringBoundLogger | None = None,
    publisher: ConfirmedPublisher | None = None, accepted: Deduplicator | None = None,
    spool: Spool | None = None, tracing: Tracing | None = None,
) -> IngressProcess:
    """The ingress of ``settings``; ``ConfigError`` if a tenant has no webhook secret and
    ``allow_unsigned`` is not set. The publisher made here declares ``bindings`` (default:
    the installed handlers') on each connection, or, with ``declare_topology`` off, only
    checks passively that the exchanges it publishes to exist (``ConfigError`` naming those
    missing); a given ``publisher`` does what it was made to. ``accepted`` remembers the
    deliveries accepted (default: Redis, else memory).
    ``spool`` keeps what the broker does not confirm (default: one in ``SPOOL_DIR`` if set;
    it is opened, and its directory locked, when the process starts serving). ``tracing``
    defaults to what the ``OTEL_*`` settings ask for (``ConfigError`` for one it cannot do)."""
    log = log if log is not None else get_logger(component="ingress")
    metrics = metrics if metrics is not None else Metrics()
    metrics.prepare_ingress(settings.all_tenants())
    check_signing(settings, log)
    tracing = tracing or _tracing(settings, "ingress", log)
    if publisher is None:
        if bindings is None:
            bindings = bindings_of(settings, [h.cls for h in plugins.discover()])
        publisher = _ingress_publisher(settings, bindings, metrics, log)
    if accepted is None:
        accepted = _deduplicator(settings, "ingress", log, metrics)
    if spool is None and settings.spool_dir is not None:
        spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_bytes,
                      segment_bytes=settings.spool_segment_bytes, metrics=metrics, log=log,
                      write_timeout=settings.spool_write_timeout)
    ingress = Ingress(settings, publisher, metrics, log, accepted, spool,
                      tracer=tracing.tracer if tracing else None)
    return IngressProcess(settings, ingress, publisher, accepted, metrics, log, spool, tracing)


def build_worker(
    settings: Settings, handlers: Sequence[Handler], *, metrics: Metrics | None = None,
    log: FilteringBoundLogger | None = None, publisher: ConfirmedPublisher | None = None,
    clients: ZenotiClients | None = None, done: Deduplicator | None = None,
    dispatcher_types: Mapping[str, type[Dispatcher]] | None = None,
    tracing: Tracing | None = None,
) -> WorkerProcess:
    """A worker consuming the queues of ``handlers`` (one instance each). Every tenant's API
    budget is made now, so its warning (no Redis) comes at start-up. ``done`` remembers the
    messages handled (default: Redis, else memory); ``dispatcher_types`` maps a handler's
    name to the ``Dispatcher`` class that runs it (default ``Dispatcher``). ``tracing``
    defaults to what the ``OTEL_*`` settings ask for; given ``clients`` are traced only if
    they were made so."""
    log = log if log is not None else get_logger(component="worker")
    metrics = metrics if metrics is not None else Metrics()
    metrics.prepare_worker(settings.all_tenants(), [h.name for h in handlers],
                           settings.snapshot_kinds)
    tracing = tracing or _tracing(settings, "worker", log)
    if publisher is None:
        publisher = _worker_publisher(settings, metrics, log)
    if clients is None:
        clients = ZenotiClients(settings, metrics,
                                tracer_provider=tracing.provider if tracing else None)
    _make_budgets(settings, clients)
    if done is None:
        done = _deduplicator(settings, "done", log, metrics)
    kinds = dispatcher_types or {}
    tracer = tracing.tracer if tracing else None
    dispatchers = [_dispatcher(settings, h, kinds.get(h.name, Dispatcher), publisher, clients,
                               done, metrics, log, tracer) for h in handlers]
    worker = Worker(settings, dispatchers, bindings_of(settings, handlers), publisher, log)
    return WorkerProcess(settings, worker, dispatchers, publisher, clients, done, metrics, log,
                         tracing)


async def run_ingress(settings: Settings, stop: asyncio.Event) -> None:
    """``zenoti-events ingress``: the ingress of ``settings``, served until ``stop``."""
    await build_ingress(settings).serve(stop)


async def run_worker(settings: Settings, stop: asyncio.Event, enabled: Sequence[str] = ()) -> None:
    """``zenoti-events worker``: the enabled handlers (all installed if none), served until
    ``stop``."""
    await build_worker(settings, installed(enabled)).serve(stop)


def installed(enabled: Sequence[str] = ()) -> list[Handler]:
    """One instance of each installed handler (only the ``enabled`` ones if any), checked
    (``PluginError`` lists every problem)."""
    return [loaded.cls() for loaded in plugins.discover(enabled or None)]


def _make_budgets(settings: Settings, clients: ZenotiClients) -> None:
    """Make the client of every tenant with an API key now, and with it its API budget, so
    that what a budget says when made (no Redis: correct for one process only) is said at
    start-up. A tenant without a key gets none: its messages are dead-lettered when they come."""
    for name, tenant in settings.all_tenants().items():
        if tenant.api_key.get_secret_value():
            clients.for_tenant(name)


def bindings_of(
    settings: Settings, handlers: Iterable[Handler | type[Handler]]
) -> list[topology.Binding]:
    """The queue bindings of ``handlers`` (instances or classes), after the settings'
    overrides."""
    return topology.bindings_for(
        {h.name: h.event_types for h in handlers}, settings.handler_event_types
    )


async def declare(
    channel: AbstractChannel, settings: Settings, bindings: Sequence[topology.Binding]
) -> None:
    """Declare the topology as ``settings`` shape it (retry tiers, delivery limit, the
    archive's retention)."""
    await topology.declare(channel, bindings, retry_tiers=settings.retry_tiers,
                           delivery_limit=settings.delivery_limit,
                           archive=Retention.of(settings))


async def declare_topology(settings: Settings) -> list[topology.Binding]:
    """Declare the whole topology once, then put its policies over the management API
    (``processor.ops.policies.ensure``: an API out of reach is a warning, a refusal raises
    ``PolicyRefused``); return the bindings declared."""
    bindings = bindings_of(settings, [h.cls for h in plugins.discover()])
    log = get_logger(component="topology")
    connection = await connect(settings.amqp_url.get_secret_value(), attempt_timeout=10,
                               name="topology", log=log)
    async with connection, connection.channel() as channel:
        await declare(channel, settings, bindings)
    await policies.ensure(settings, log)
    return bindings


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


def _ingress_publisher(
    settings: Settings, bindings: Sequence[topology.Binding], metrics: Metrics,
    log: FilteringBoundLogger,
) -> ConfirmedPublisher:
    declared = list(bindings)

    async def on_connect(channel: AbstractChannel) -> None:
        if settings.declare_topology:
            await declare(channel, settings, declared)
        else:
            await topology.check(channel, topology.ingress_needs())

    return ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="ingress",
        on_connect=on_connect,
        max_delay=settings.reconnect_max_delay, max_message_size=settings.broker_max_message_size,
        late_confirm_wait=settings.late_confirm_wait,
        late_confirm_max_watchers=settings.late_confirm_max_watchers,
        late_confirm_max_bytes=settings.late_confirm_max_bytes,
    )


def _worker_publisher(
    settings: Settings, metrics: Metrics, log: FilteringBoundLogger
) -> ConfirmedPublisher:
    return ConfirmedPublisher(
        settings.amqp_url.get_secret_value(), log=log, metrics=metrics, name="worker-publisher",
        max_delay=settings.reconnect_max_delay, max_message_size=settings.broker_max_message_size,
    )


def _dispatcher(
    settings: Settings, handler: Handler, kind: type[Dispatcher], publisher: ConfirmedPublisher,
    clients: ZenotiClients, done: Deduplicator, metrics: Metrics, log: FilteringBoundLogger,
    tracer: Tracer | None,
) -> Dispatcher:
    retry = RetryPolicy(handler.name, settings.retry_tiers, settings.retry_limits(handler.name),
                        clock_skew=settings.retry_clock_skew, log=log)
    return kind(
        handler, publisher=publisher, clients=clients,
        tenants=frozenset(settings.all_tenants()), retry=retry, done=done, metrics=metrics,
        log=log, confirm_timeout=settings.confirm_timeout,
        handler_timeout=settings.handler_timeout, tracer=tracer,
    )


def _tracing(settings: Settings, process: str, log: FilteringBoundLogger) -> Tracing | None:
    """The process's tracing as the ``OTEL_*`` settings ask for it, said once when on."""
    tracing = start_tracing(settings, process)
    if tracing is not None:
        service = tracing.provider.resource.attributes.get("service.name")
        log.info("tracing.on", service=service, exporters=settings.otel_traces_exporter or "otlp")
    return tracing


def _deduplicator(settings: Settings, namespace: str, log: FilteringBoundLogger,
                  metrics: Metrics) -> Deduplicator:
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return make_deduplicator(url, f"{settings.redis_prefix}:{namespace}",
                             settings.dedupe_window_seconds,
                             settings.dedupe_memory_keys, log,
                             RedisUp(metrics.redis_up, "dedupe"))


def _ingress_limits(settings: Settings) -> probes.Limits:
    return probes.Limits(header_timeout=settings.ingress_header_timeout,
                         max_connections=settings.ingress_max_connections,
                         probe_connections=settings.ingress_probe_connections,
                         shutdown_grace=settings.ingress_shutdown_grace)


def _probe_app(metrics: Metrics, ready: Callable[[], bool]) -> web.Application:
    app = web.Application()
    probes.add_routes(app, metrics, ready)
    return app

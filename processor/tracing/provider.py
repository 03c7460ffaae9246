"""Whether a process traces, and its tracer provider when it does.

Off unless the standard OpenTelemetry variables ask for it (read through ``Settings``):

=========================================  ==================================================
variables                                  tracing
=========================================  ==================================================
``OTEL_SDK_DISABLED=true``                 off, whatever else is set
``OTEL_TRACES_EXPORTER=none``              off
``OTEL_TRACES_EXPORTER`` naming ``otlp``   on, exporting to each one named (comma-separated);
and/or ``console``                         another name is a ``ConfigError`` at start-up
``OTEL_TRACES_EXPORTER`` unset, and        on, exporting OTLP
``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set
anything else (the default)                off: no provider, no tracer, nothing on the hot
                                           path but ``if tracer is None``
=========================================  ==================================================

OTLP goes over HTTP/protobuf (``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` other than
``http/protobuf`` is a ``ConfigError``); the exporter reads its endpoint, headers, timeout and
compression from the environment itself, the ``BatchSpanProcessor`` its ``OTEL_BSP_*`` and
the provider its sampler (``OTEL_TRACES_SAMPLER``, default: follow the parent, else sample).
The service is named ``zenoti-events-<process>`` unless ``OTEL_SERVICE_NAME`` is set.

The provider is the process's own, never the global one: nothing else in the process (a
library instrumenting itself through the global API) starts exporting behind our back, and
tests make as many as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Tracer

from processor.errors import ConfigError
from processor.settings import Settings
from processor.tracing.carrier import quiet_library_logs

_EXPORTERS = ("otlp", "console")
_PROTOCOLS = ("", "http/protobuf")
SCOPE = "zenoti-events"  # the instrumentation scope of our own spans


@dataclass(frozen=True)
class Tracing:
    """A process's tracer provider, and the tracer of our own spans."""

    provider: TracerProvider
    tracer: Tracer

    @classmethod
    def of(cls, provider: TracerProvider) -> Tracing:
        """Tracing through ``provider`` (tests give one with an in-memory exporter); the
        OpenTelemetry loggers that would quote a sender's headers are held to errors
        (``processor.tracing.carrier.quiet_library_logs``)."""
        quiet_library_logs()
        return cls(provider, provider.get_tracer(SCOPE))

    async def shutdown(self, within: float) -> None:
        """Export what is buffered and stop, waiting at most ``within`` seconds: an exporter
        that does not answer never holds the process's exit (the flush runs in a daemon
        thread, abandoned past the bound)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def flush_and_stop() -> None:
            try:
                self.provider.force_flush(int(within * 1000))
                self.provider.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, done)

        threading.Thread(target=flush_and_stop, name="tracing-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, within)


def wanted(settings: Settings) -> list[str]:
    """The exporters the OTEL_* settings ask for (see the module's table); empty: off.
    ``ConfigError`` for an exporter or protocol this build cannot serve."""
    if settings.otel_sdk_disabled.strip().lower() == "true":
        return []
    named = [n.strip().lower() for n in settings.otel_traces_exporter.split(",") if n.strip()]
    if not named:
        endpoints = (settings.otel_exporter_otlp_traces_endpoint,
                     settings.otel_exporter_otlp_endpoint)
        named = ["otlp"] if any(e.strip() for e in endpoints) else []
    named = [n for n in named if n != "none"]
    unknown = sorted(set(named) - set(_EXPORTERS))
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER names {unknown}: this build exports to "
                          f"{' and '.join(_EXPORTERS)} (or none)")
    protocol = (settings.otel_exporter_otlp_traces_protocol
                or settings.otel_exporter_otlp_protocol).strip().lower()
    if "otlp" in named and protocol not in _PROTOCOLS:
        raise ConfigError(f"OTLP over {protocol!r} is not installed: this build exports OTLP "
                          "over http/protobuf")
    return list(dict.fromkeys(named))


def start(settings: Settings, process: str) -> Tracing | None:
    """The tracing of process ``process`` (``ingress``, ``worker``) as the settings ask,
    exporting through a ``BatchSpanProcessor`` per exporter; ``None`` when off."""
    exporters = wanted(settings)
    if not exporters:
        return None
    name = settings.otel_service_name.strip() or f"zenoti-events-{process}"
    # shutdown_on_exit=False: the SDK's own exit hook would wait for a stuck exporter (30 s
    # and more) after ``shutdown`` gave up at its bound, past the pod's grace period.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}),
                              shutdown_on_exit=False)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    return Tracing.of(provider)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Imported only when asked for: it brings requests and protobuf into the process.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)

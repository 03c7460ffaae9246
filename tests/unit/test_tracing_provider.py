"""When tracing is on, by the standard OTEL_* variables; what a process is named; and a
shutdown that an unanswering exporter cannot hold past its bound."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from pydantic import SecretStr

from processor.errors import ConfigError
from processor.settings import Settings
from processor.tracing import Tracing, start, wanted
from processor.wiring import build_ingress, build_worker


def settings(**otel: str) -> Settings:
    values: dict[str, Any] = {"amqp_url": SecretStr("amqp://guest:guest@127.0.0.1:1/"),
                              "api_key": SecretStr("k"), "allow_unsigned": True,
                              "redis_url": None}
    return Settings(**{**values, **otel})


@pytest.mark.parametrize(("otel", "exporters"), [
    ({}, []),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "console, OTLP"}, ["console", "otlp"]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, []),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}, ["console"]),
])
def test_tracing_is_on_only_when_the_otel_variables_ask(otel: dict[str, str],
                                                        exporters: list[str]) -> None:
    assert wanted(settings(**otel)) == exporters


@pytest.mark.parametrize("otel", [
    {"OTEL_TRACES_EXPORTER": "zipkin"},
    {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
])
def test_an_exporter_this_build_cannot_serve_is_a_config_error(otel: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        wanted(settings(**otel))


def test_the_standard_variables_are_read_under_their_own_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-edge")
    read = Settings()
    assert (read.otel_traces_exporter, read.otel_service_name) == ("console", "billing-edge")


@pytest.mark.parametrize("name", ["OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"])
def test_the_prefixed_names_are_not_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The exporter reads the standard names alone: ZENOTI_EVENTS_OTEL_* turning tracing on
    would export to the SDK's default, localhost."""
    monkeypatch.setenv(f"ZENOTI_EVENTS_{name}", "http://collector:4318")
    read = Settings()
    assert getattr(read, name.lower()) == ""
    assert wanted(read) == []


async def test_each_process_is_named_unless_otel_service_name_is_set() -> None:
    for otel, process, name in [({}, "worker", "zenoti-events-worker"),
                                ({}, "ingress", "zenoti-events-ingress"),
                                ({"OTEL_SERVICE_NAME": "edge"}, "ingress", "edge")]:
        tracing = start(settings(OTEL_TRACES_EXPORTER="console", **otel), process)
        assert tracing is not None
        assert tracing.provider.resource.attributes["service.name"] == name
        await tracing.shutdown(1.0)


async def test_processes_built_without_the_variables_trace_nothing() -> None:
    ingress = build_ingress(settings(), bindings=[])
    worker = build_worker(settings(), [])
    assert ingress.tracing is None and worker.tracing is None
    await ingress.aclose()
    await worker.aclose()


class Stuck(SpanExporter):
    """An exporter whose collector never answers (until released)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


async def test_shutdown_flushes_within_its_bound_even_if_the_collector_hangs() -> None:
    stuck = Stuck()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(stuck))
    tracing = Tracing.of(provider)
    with tracing.tracer.start_as_current_span("one"):
        pass
    began = time.monotonic()
    await tracing.shutdown(0.3)
    assert time.monotonic() - began < 3.0  # the collector hangs until released: forever
    stuck.release.set()


_EXITING = """
import asyncio, sys
from pydantic import SecretStr
from processor.settings import Settings
from processor.tracing import start

settings = Settings(amqp_url=SecretStr("amqp://guest:guest@127.0.0.1:1/"), redis_url=None,
                    OTEL_EXPORTER_OTLP_ENDPOINT=sys.argv[1])
tracing = start(settings, "worker")
assert tracing is not None
for n in range(2048):
    with tracing.tracer.start_as_current_span(f"span {n}"):
        pass
asyncio.run(tracing.shutdown(0.5))
"""


def test_a_process_exits_within_the_bound_when_the_collector_never_answers() -> None:
    """The whole process, not only ``shutdown``: the SDK's own exit hook must not wait for
    the stuck export (it did: 31 s with 2,048 spans buffered)."""
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-c", _EXITING, endpoint], timeout=60,
                              capture_output=True, text=True)
        took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert took < 8.0, f"exited after {took:.1f} s"

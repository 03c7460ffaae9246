"""Scenario 2, worker: a prefilled queue drained by ours, by FastStream, and by bare aio-pika.

Each implementation does the same work per event (``bench.apps.handler``): decode the envelope,
validate ``data`` with the same pydantic model, build the same enriched event, publish it with
a confirm, ack. The enrichment is served from the cache (no API call), so what differs is the
framework. Prefetch 32 for all (our default). Rounds alternate the variants.

``ours, traced`` is ours with tracing on (``OTEL_TRACES_EXPORTER=otlp``, the SDK's default batch
settings), exporting OTLP over HTTP to a stand-in collector served by this process that reads
and drops each batch: the cost of two spans per event (the message and its publish; this
handler makes no API call), against ``ours`` in the same rounds. With ``BENCH_BEFORE_FROM`` set
to another checkout, ``ours, before`` runs that checkout's worker too, for a before/after of
the untraced path in the same run.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench import broker, procs
from bench.drain import drain
from bench.runner import Options, Run, attempt
from bench.stats import Measured, Metric, Ratio
from bench.workload import deliveries

METRICS = (
    Metric("events_per_s", "events/s"),
    Metric("cpu_ms", "cpu ms/event", "{:.3f}", higher_is_better=False),
    Metric("broker_cpu_ms", "broker ms/event", "{:.3f}", higher_is_better=False),
    Metric("rss_mib", "RSS MiB", "{:.0f}", higher_is_better=False),
    Metric("other_cores", "other cores", "{:.2f}", False, show_spread=False),
)


@dataclass(frozen=True)
class Worker:
    """How to start one implementation."""

    name: str
    module: str
    ours: bool = False
    env: dict[str, str] = field(default_factory=dict)  # more environment, for ours

    def start(self, options: Options) -> procs.Process:
        loop = ("--loop", options.loop)
        if self.ours:
            env = procs.ours_env(ZENOTI_EVENTS_WORKER_METRICS_PORT=str(procs.free_port()),
                                 **self.env)
            return procs.Process(self.module, *loop, env=env)
        return procs.Process(self.module, *loop)


TRACED = "ours, traced"
BEFORE = "ours, before"
WORKERS = (Worker("ours", "bench.apps.ours_worker", ours=True),
           Worker("faststream", "bench.apps.faststream_worker"),
           Worker("aio-pika floor", "bench.apps.aiopika_worker"))


def _variants(collector: str) -> list[Worker]:
    """Every variant of this run: ``WORKERS``, ours traced, and ours before when asked."""
    traced = Worker(TRACED, "bench.apps.ours_worker", ours=True, env={
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector})
    variants = [*WORKERS, traced]
    before = os.environ.get("BENCH_BEFORE_FROM")
    if before:
        variants.append(Worker(BEFORE, "bench.apps.ours_worker", ours=True,
                               env={"PYTHONPATH": f"{before}{os.pathsep}{procs.ROOT}"}))
    return variants


@contextmanager
def _collector() -> Iterator[str]:
    """A stand-in OTLP/HTTP collector that reads and drops every batch; yields its URL."""

    class Drop(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def run(options: Options) -> Measured:
    measured = Measured(
        "worker", "Worker: prefilled queue, enrichment from cache, publish with confirm, ack",
        METRICS, ratios=[Ratio("ours", "faststream", "events_per_s"),
                         Ratio("ours", "aio-pika floor", "events_per_s"),
                         Ratio("ours", "faststream", "cpu_ms"),
                         Ratio("ours", "aio-pika floor", "cpu_ms"),
                         Ratio(TRACED, "ours", "events_per_s"), Ratio(TRACED, "ours", "cpu_ms")])
    count = 4000 if options.quick else 20000
    with _collector() as collector:
        variants = _variants(collector)
        for round_no in range(1, options.runs + 1):
            print(f"worker round {round_no}/{options.runs}", flush=True)
            for worker in variants:
                measured.add(worker.name, attempt(
                    worker.name, partial(once, worker, count, options), options))
    if any(w.name == BEFORE for w in variants):
        measured.ratios = [*measured.ratios, Ratio("ours", BEFORE, "events_per_s"),
                           Ratio("ours", BEFORE, "cpu_ms")]
    fast = measured.ratio(Ratio("ours", "faststream", "events_per_s"))
    floor = measured.ratio(Ratio("ours", "aio-pika floor", "events_per_s"))
    measured.goal("events/s >= 1.2x FastStream", fast, fast >= 1.2, "{:.2f}x")
    measured.goal("events/s >= 70% of the aio-pika floor", floor, floor >= 0.7, "{:.2f}x")
    measured.notes["prefilled"] = count
    return measured


def once(worker: Worker, count: int, options: Options, processes: int = 1) -> Run:
    """Prefill ``count`` events, start ``processes`` copies of ``worker``, measure the drain."""
    asyncio.run(broker.reset())
    asyncio.run(broker.prefill(deliveries(count)))
    started = [worker.start(options) for _ in range(processes)]
    with procs.running(*started):
        drained = asyncio.run(drain([p.pid for p in started], count, timeout=count / 100 + 30))
    return drained.figures()

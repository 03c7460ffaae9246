"""Scenario 2, worker: a prefilled queue drained by ours, by FastStream, and by bare aio-pika.

Each implementation does the same work per event (``bench.apps.handler``): decode the envelope,
validate ``data`` with the same pydantic model, build the same enriched event, publish it with
a confirm, ack. The enrichment is served from the cache (no API call), so what differs is the
framework. Prefetch 32 for all (our default). Rounds alternate the variants.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial

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

    def start(self, options: Options) -> procs.Process:
        loop = ("--loop", options.loop)
        if self.ours:
            env = procs.ours_env(ZENOTI_EVENTS_WORKER_METRICS_PORT=str(procs.free_port()))
            return procs.Process(self.module, *loop, env=env)
        return procs.Process(self.module, *loop)


WORKERS = (Worker("ours", "bench.apps.ours_worker", ours=True),
           Worker("faststream", "bench.apps.faststream_worker"),
           Worker("aio-pika floor", "bench.apps.aiopika_worker"))


def run(options: Options) -> Measured:
    measured = Measured(
        "worker", "Worker: prefilled queue, enrichment from cache, publish with confirm, ack",
        METRICS, ratios=[Ratio("ours", "faststream", "events_per_s"),
                         Ratio("ours", "aio-pika floor", "events_per_s"),
                         Ratio("ours", "faststream", "cpu_ms"),
                         Ratio("ours", "aio-pika floor", "cpu_ms")])
    count = 4000 if options.quick else 20000
    for round_no in range(1, options.runs + 1):
        print(f"worker round {round_no}/{options.runs}", flush=True)
        for worker in WORKERS:
            measured.add(worker.name, attempt(worker.name, partial(once, worker, count, options),
                                              options))
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

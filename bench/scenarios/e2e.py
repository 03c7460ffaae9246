"""Scenario 3, end to end: delivery -> ingress -> queue -> worker -> ``zenoti.enriched``.

Our ingress and worker (``CachedFreeze``) run together. First the maximum: wrk at full load on
the ingress for a few seconds, then the worker catches up; the deliveries sent divided by the
time until the last enriched event reached a collector queue is what both stages sustain
together on this machine. Then a paced load at half that rate:
every delivery's latency runs from the instant it was due to the instant its enriched event
reached the collector, read by a consumer in this process (one clock). The baseline does the
same with the floors (``floor_ingress`` + the aio-pika worker) at the same offered rate.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench import broker, paced, procs, wrk
from bench.runner import Options, Run, attempt
from bench.scenarios.ingress import CLIENTS, PATH, SERVERS
from bench.scenarios.worker import WORKERS
from bench.stats import Measured, Metric, Ratio, percentile
from bench.workload import deliveries, write_wrk_files

METRICS = (
    Metric("offered_per_s", "offered/s"),
    Metric("p50_ms", "p50 ms", "{:.1f}", higher_is_better=False),
    Metric("p90_ms", "p90 ms", "{:.1f}", higher_is_better=False),
    Metric("p99_ms", "p99 ms", "{:.1f}", higher_is_better=False),
    Metric("max_per_s", "max enriched/s"),
    Metric("missing", "missing", "{:.0f}", higher_is_better=False),
)
PAIRS = {"ours": (SERVERS[0], WORKERS[0]), "floors": (SERVERS[1], WORKERS[2])}


@dataclass
class Setup:
    script: Path
    available: int
    max_s: float
    paced_s: float


def run(options: Options) -> Measured:
    measured = Measured("e2e", "End to end: delivery to enriched event at half the maximum rate",
                        METRICS, ratios=[Ratio("ours", "floors", "p99_ms"),
                                         Ratio("ours", "floors", "max_per_s")])
    with tempfile.TemporaryDirectory() as tmp:
        max_s = options.seconds(6, 3)
        count = int(6000 * max_s)
        setup = Setup(wrk.write_script(Path(tmp), write_wrk_files(Path(tmp), count, 2), PATH),
                      count, max_s, options.seconds(12, 5))
        for round_no in range(1, options.runs + 1):
            print(f"e2e round {round_no}/{options.runs}", flush=True)
            ours = attempt("ours", partial(once, "ours", setup, options, None), options)
            measured.add("ours", ours)
            rate = ours["offered_per_s"]
            measured.add("floors", attempt("floors", partial(once, "floors", setup, options, rate),
                                           options))
    return measured


def once(pair: str, setup: Setup, options: Options, rate: float | None) -> Run:
    """The maximum, then ``rate`` (default: half the maximum) paced through both stages."""
    server, worker = PAIRS[pair]
    asyncio.run(broker.reset())
    asyncio.run(broker.declare_collector(broker.COLLECTOR))
    port = procs.free_port()
    with procs.running(server.start(port, options), worker.start(options)):
        time.sleep(1.0)  # the worker's consumer attaches
        maximum = _maximum(f"http://127.0.0.1:{port}{PATH}", setup)
        offered = rate or maximum / 2
        figures = asyncio.run(_paced(port, offered, setup.paced_s))
    return {"offered_per_s": offered, "max_per_s": maximum, **figures}


def _maximum(url: str, setup: Setup) -> float:
    """Deliveries per second through both stages: wrk at full load, then the worker's catch-up;
    the ingress starves the worker while wrk runs, so neither phase alone is the answer."""
    before = asyncio.run(broker.depth(broker.COLLECTOR))
    started = time.monotonic()
    sent = wrk.run(url, setup.script, threads=2, connections=CLIENTS, seconds=setup.max_s,
                   available=setup.available)
    produced = asyncio.run(_produced(before + sent.requests, timeout=120.0)) - before
    rate = produced / (time.monotonic() - started)
    asyncio.run(broker.declare_collector(broker.COLLECTOR))  # empty it for the paced phase
    return rate


async def _produced(target: int, timeout: float) -> int:
    """The collector's depth once it reached ``target`` (or the time ran out)."""
    deadline = time.monotonic() + timeout
    depth = await broker.depth(broker.COLLECTOR)
    while depth < target and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        depth = await broker.depth(broker.COLLECTOR)
    return depth


async def _paced(port: int, rate: float, seconds: float) -> dict[str, float]:
    arrived: dict[str, float] = {}

    async def on_message(message: AbstractIncomingMessage) -> None:
        # ``<key>:<handler>:<output>`` (the floor) or ``<tenant>:<key>:<handler>:<output>``
        # (ours, since ids are scoped by tenant): the key is third from the end either way.
        parts = (message.message_id or "").split(":")
        if len(parts) >= 3:
            arrived[parts[-3]] = time.monotonic()

    connection = await aio_pika.connect(broker.URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(broker.COLLECTOR)
        await queue.consume(on_message, no_ack=True)
        items = list(deliveries(int(rate * seconds), prefix="e"))
        result = await paced.run("127.0.0.1", port, PATH, items, rate=rate, seconds=seconds,
                                 connections=CLIENTS)
        deadline = time.monotonic() + 15
        while len(arrived) < len(result.due) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    latencies = [(arrived[k] - due) * 1000 for k, due in result.due.items() if k in arrived]
    return {"p50_ms": percentile(latencies, 50), "p90_ms": percentile(latencies, 90),
            "p99_ms": percentile(latencies, 99), "missing": len(result.due) - len(latencies)}

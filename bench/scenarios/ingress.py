"""Scenario 1, ingress: signed deliveries of 1.5 KB over 64 keep-alive connections.

``ours`` is ``zenoti-events ingress`` as shipped (signature, envelope, de-duplication,
publish with confirm, 202); ``floor`` is ``bench.apps.floor_ingress`` (the same framework,
publish with confirm, 202, no checks). Both publish to the same exchange and quorum queue.
Two loads: full (wrk, closed loop, 64 connections) and a fixed offered rate of 1,000/s
(``bench.paced``, open loop, latency from the instant each request was due). Rounds alternate
the variants, so slow drift on the machine hits both alike.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench import broker, paced, procs, wrk
from bench.machine import CpuMeter, broker_pid
from bench.runner import Options, Run, attempt
from bench.stats import Measured, Metric, Ratio, percentile
from bench.workload import SignedDelivery, deliveries, write_wrk_files

PATH = "/webhooks/zenoti"
CLIENTS = 64
FIXED_RATE = 1000.0
METRICS = (
    Metric("deliveries_per_s", "deliveries/s"),
    Metric("p50_ms", "p50 ms", "{:.1f}", higher_is_better=False),
    Metric("p99_ms", "p99 ms", "{:.1f}", higher_is_better=False),
    Metric("cpu_ms", "cpu ms/delivery", "{:.3f}", higher_is_better=False),
    Metric("broker_cpu_ms", "broker ms/delivery", "{:.3f}", higher_is_better=False),
    Metric("other_cores", "other cores", "{:.2f}", False, show_spread=False),
)
FULL, FIXED = f"@ {CLIENTS} clients", f"@ {FIXED_RATE:.0f}/s"


@dataclass(frozen=True)
class Server:
    """How to start one variant on a port."""

    name: str
    module: str
    ours: bool

    def start(self, port: int, options: Options) -> procs.Process:
        loop = ("--loop", options.loop)
        if self.ours:
            env = procs.ours_env(ZENOTI_EVENTS_INGRESS_PORT=str(port),
                                 ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS="0")
            process = procs.Process(self.module, *loop, env=env)
        else:
            process = procs.Process(self.module, str(port), *loop)
        process.wait_http(f"http://127.0.0.1:{port}/readyz")
        return process


SERVERS = (Server("ours", "bench.apps.ours_ingress", True),
           Server("floor", "bench.apps.floor_ingress", False))


@dataclass
class Load:
    """The request files (warm-up and measured sets are disjoint) and the timings."""

    script_warm: Path
    script: Path
    available: int
    paced_warm: list[SignedDelivery]
    paced: list[SignedDelivery]
    warm_s: float
    measure_s: float


def run(options: Options) -> Measured:
    measured = Measured("ingress", "Ingress: signed 1.5 KB deliveries, full path vs floor",
                        METRICS, ratios=_ratios())
    with tempfile.TemporaryDirectory() as tmp:
        load = prepare(Path(tmp), options)
        for round_no in range(1, options.runs + 1):
            print(f"ingress round {round_no}/{options.runs}", flush=True)
            for load_of, label in ((_full, FULL), (_fixed, FIXED)):
                for server in SERVERS:
                    name = f"{server.name} {label}"
                    measured.add(name, attempt(name, partial(load_of, server, load, options),
                                               options))
    _goals(measured)
    return measured


def _ratios() -> list[Ratio]:
    return [Ratio(f"ours {FULL}", f"floor {FULL}", "deliveries_per_s"),
            Ratio(f"ours {FULL}", f"floor {FULL}", "cpu_ms"),
            Ratio(f"ours {FIXED}", f"floor {FIXED}", "p99_ms"),
            Ratio(f"ours {FIXED}", f"floor {FIXED}", "cpu_ms")]


def _goals(measured: Measured) -> None:
    share = measured.ratio(Ratio(f"ours {FULL}", f"floor {FULL}", "deliveries_per_s"))
    measured.goal("throughput at full load >= 85% of the floor's", share, share >= 0.85)
    p99 = measured.median(f"ours {FIXED}", "p99_ms")
    measured.goal("p99 at 1,000 deliveries/s < 25 ms", p99, p99 < 25, "{:.1f} ms")


def prepare(directory: Path, options: Options) -> Load:
    """Write the request files under ``directory`` (kept while the scenario runs) and build
    the paced deliveries: enough distinct ones for any rate seen here."""
    measure_s, warm_s = options.seconds(10, 4), options.seconds(3, 1)
    count = int(8000 * measure_s)  # above any rate seen here, so no request repeats
    warm = directory / "warm"
    warm.mkdir()
    files = write_wrk_files(directory, count, threads=2)
    warm_files = write_wrk_files(warm, int(8000 * warm_s), threads=2, prefix="w")
    fixed = int(FIXED_RATE * measure_s)
    return Load(
        script_warm=wrk.write_script(warm, warm_files, PATH),
        script=wrk.write_script(directory, files, PATH), available=count,
        paced_warm=list(deliveries(int(FIXED_RATE * warm_s), prefix="v")),
        paced=list(deliveries(fixed, prefix="p")), warm_s=warm_s, measure_s=measure_s,
    )


def _full(server: Server, load: Load, options: Options) -> Run:
    asyncio.run(broker.reset())
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    with procs.running(server.start(port, options)) as (process,):
        wrk.run(url, load.script_warm, threads=2, connections=CLIENTS, seconds=load.warm_s,
                available=load.available)
        meter = CpuMeter([process.pid, broker_pid(), os.getpid()])
        before = meter.sample()
        result = wrk.run(url, load.script, threads=2, connections=CLIENTS,
                         seconds=load.measure_s, available=load.available)
        usage = meter.between(before, meter.sample())
    if result.wrapped:
        raise RuntimeError("wrk ran out of distinct deliveries: raise the request count")
    count = max(result.requests, 1)
    return {"deliveries_per_s": result.per_second, "p50_ms": result.p50_us / 1000,
            "p99_ms": result.p99_us / 1000, "cpu_ms": usage.cpu[0] * 1000 / count,
            "broker_cpu_ms": usage.cpu[1] * 1000 / count,
            "errors": result.bad_status + result.socket_errors,
            "other_cores": max(usage.other_cores - result.cpu_seconds / usage.seconds, 0.0)}


def _fixed(server: Server, load: Load, options: Options) -> Run:
    asyncio.run(broker.reset())
    port = procs.free_port()
    with procs.running(server.start(port, options)) as (process,):
        asyncio.run(paced.run("127.0.0.1", port, PATH, load.paced_warm, rate=FIXED_RATE,
                              seconds=load.warm_s, connections=CLIENTS))
        meter = CpuMeter([process.pid, broker_pid(), os.getpid()])
        before = meter.sample()
        result = asyncio.run(paced.run("127.0.0.1", port, PATH, load.paced, rate=FIXED_RATE,
                                       seconds=load.measure_s, connections=CLIENTS))
        usage = meter.between(before, meter.sample())
    count = max(len(result.latencies_ms), 1)
    return {"deliveries_per_s": result.answered_per_second,
            "p50_ms": percentile(result.latencies_ms, 50),
            "p99_ms": percentile(result.latencies_ms, 99),
            "cpu_ms": usage.cpu[0] * 1000 / count, "broker_cpu_ms": usage.cpu[1] * 1000 / count,
            "errors": sum(v for k, v in result.statuses.items() if k not in ("200", "202")),
            "generator_lag_p99_ms": percentile(result.lags_ms, 99),
            "other_cores": usage.other_cores}

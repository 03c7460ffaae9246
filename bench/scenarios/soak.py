"""Scenario 4, soak: 200,000 events through one of our workers, watching for leaks.

One worker runs throughout. A tenth of the events is queued and drained, and the worker is
measured idle (resident memory, its asyncio tasks, the broker's open channels in the benchmark
vhost); then the events up to 60%, and up to 100%, each time measured idle again (the worker
consumes while they arrive). Comparing idle states keeps in-flight work (up to the prefetch,
plus aio-pika's per-message tasks) out of the comparison: any growth is something kept.
One thing is kept by design: the in-process de-duplication store (``dedupe_memory_keys``,
100,000 keys by default) fills until its bound, after 100,000 events; to see the rest alone,
run ``ZENOTI_EVENTS_DEDUPE_MEMORY_KEYS=1000 python -m bench soak``.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import broker, procs
from bench.machine import rss_mib
from bench.runner import Options
from bench.scenarios.worker import WORKERS
from bench.stats import Measured, Metric
from bench.workload import SignedDelivery, deliveries

METRICS = (
    Metric("events_per_s", "events/s (fed)"),
    Metric("rss_10_mib", "RSS@10% MiB", "{:.1f}", higher_is_better=False),
    Metric("rss_60_mib", "RSS@60% MiB", "{:.1f}", higher_is_better=False),
    Metric("rss_100_mib", "RSS@100% MiB", "{:.1f}", higher_is_better=False),
    Metric("rss_growth", "growth 10-100%", "{:.1%}", higher_is_better=False),
    Metric("rss_growth_60", "growth 60-100%", "{:.1%}", higher_is_better=False),
    Metric("tasks_10", "tasks@10%", "{:.0f}", higher_is_better=False),
    Metric("tasks_100", "tasks@100%", "{:.0f}", higher_is_better=False),
    Metric("channels_10", "channels@10%", "{:.0f}", higher_is_better=False),
    Metric("channels_100", "channels@100%", "{:.0f}", higher_is_better=False),
)


def run(options: Options) -> Measured:
    count = 20_000 if options.quick else 200_000
    measured = Measured("soak", f"Soak: {count:,} events through one worker", METRICS)
    asyncio.run(broker.reset())
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.txt"
        env = procs.ours_env(ZENOTI_EVENTS_WORKER_METRICS_PORT=str(procs.free_port()),
                             BENCH_TASKS_FILE=str(tasks))
        with procs.running(procs.Process(WORKERS[0].module, env=env)) as (worker,):
            time.sleep(2.0)  # consuming
            items = deliveries(count)
            marks, fed, started = [], 0, time.monotonic()
            for share in (0.1, 0.6, 1.0):
                _feed(itertools.islice(items, int(count * share) - fed), count)
                fed = int(count * share)
                marks.append(_idle(worker.pid, tasks))
                print(f"  soak: {fed} events done; idle: RSS {marks[-1][0]:.1f} MiB, "
                      f"{marks[-1][1]} tasks, {marks[-1][2]} channels", flush=True)
            rate = count / (time.monotonic() - started)
    first, middle, last = marks
    figures = {"events_per_s": rate, "rss_10_mib": first[0], "rss_60_mib": middle[0],
               "rss_100_mib": last[0], "rss_growth": last[0] / first[0] - 1,
               "rss_growth_60": last[0] / middle[0] - 1, "tasks_10": first[1],
               "tasks_100": last[1], "channels_10": first[2], "channels_100": last[2]}
    measured.add("ours", figures)
    _goals(measured, figures)
    return measured


def _goals(measured: Measured, figures: dict[str, float]) -> None:
    growth = figures["rss_growth"]
    measured.goal("RSS growth from 10% to 100% < 10%", growth, growth < 0.10, "{:.1%}")
    channels = figures["channels_100"] - figures["channels_10"]
    measured.goal("no growth in open channels", channels, channels <= 0, "{:+.0f}")
    tasks = figures["tasks_100"] - figures["tasks_10"]
    measured.goal("no growth in asyncio tasks", tasks, tasks <= 0, "{:+.0f}")


def _feed(items: Iterator[SignedDelivery], total: int) -> None:
    """Queue ``items`` and wait (bounded) until the worker has drained the queue."""
    deadline = time.monotonic() + total / 100 + 60
    asyncio.run(broker.prefill(items, batch=2000))
    while asyncio.run(broker.depth()) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)


def _idle(pid: int, tasks: Path) -> tuple[float, int, int]:
    """RSS (MiB), asyncio tasks and open channels once in-flight work has settled."""
    time.sleep(3.0)
    last = tasks.read_text().splitlines()[-1]
    return rss_mib(pid), int(last.split()[1]), _channels()


def _channels() -> int:
    """Open channels in the benchmark vhost (only the worker's are open at that moment)."""
    listed = subprocess.run(["rabbitmqctl", "-q", "list_channels", "vhost"],
                            capture_output=True, text=True, check=False).stdout
    return sum(1 for line in listed.splitlines() if line.strip() == broker.vhost_name())

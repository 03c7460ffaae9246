"""``python -m bench profile``: where our ingress and worker spend their time under load.

py-spy samples the running process (no change to it) while scenario 1's full load or
scenario 2's drain runs; the raw stacks and a flame graph (SVG) go to ``bench/results/``,
and the frames with the most time per delivery are printed, so a change can be judged by the
microseconds it removes. Needs ``py-spy`` (in the ``bench`` extra); ptrace must be allowed.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from bench import broker, procs, wrk
from bench.drain import drain
from bench.report import RESULTS
from bench.runner import Options
from bench.scenarios.ingress import CLIENTS, PATH, SERVERS
from bench.scenarios.worker import WORKERS
from bench.workload import deliveries, write_wrk_files

RATE = 250  # samples per second
SHOWN = 25


def main(options: Options) -> int:
    broker.ensure_vhost()
    RESULTS.mkdir(parents=True, exist_ok=True)
    seconds = options.seconds(12, 5)
    try:
        _ingress(options, seconds)
        _worker(options, seconds)
    finally:
        asyncio.run(broker.delete_all())
    return 0


def _ingress(options: Options, seconds: float) -> None:
    asyncio.run(broker.reset())
    with tempfile.TemporaryDirectory() as tmp:
        count = int(8000 * seconds)
        script = wrk.write_script(Path(tmp), write_wrk_files(Path(tmp), count, 2), PATH)
        port = procs.free_port()
        with procs.running(SERVERS[0].start(port, options)) as (process,):
            spy = _record(process.pid, seconds, "profile-ingress")
            result = wrk.run(f"http://127.0.0.1:{port}{PATH}", script, threads=2,
                             connections=CLIENTS, seconds=seconds, available=count)
            spy.wait()
    _show("ingress", result.requests)


def _worker(options: Options, seconds: float) -> None:
    count = int(2500 * seconds)
    asyncio.run(broker.reset())
    asyncio.run(broker.prefill(deliveries(count)))
    with procs.running(WORKERS[0].start(options)) as (process,):
        spy = _record(process.pid, seconds, "profile-worker")
        done = asyncio.run(drain([process.pid], count, timeout=seconds * 4, high=1.0, low=0.0))
        spy.wait()
    _show("worker", done.events)


def _record(pid: int, seconds: float, name: str) -> subprocess.Popen[bytes]:
    raw, svg = RESULTS / f"{name}.txt", RESULTS / f"{name}.svg"
    command = ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(RATE),
               "--nonblocking"]
    subprocess.Popen([*command, "-f", "flamegraph", "-o", str(svg)],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.Popen([*command, "-f", "raw", "-o", str(raw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _show(name: str, items: int) -> None:
    """Print the frames with the most inclusive and self time, in microseconds per item."""
    inclusive, own = Counter[str](), Counter[str]()
    for line in (RESULTS / f"profile-{name}.txt").read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            inclusive[frame] += int(samples)
    per_item = 1e6 / RATE / max(items, 1)
    print(f"\n== {name}: {items} items; us per item (inclusive | self) ==")
    for (frame, count), (own_frame, own_count) in zip(
        inclusive.most_common(SHOWN), own.most_common(SHOWN), strict=False
    ):
        print(f"{count * per_item:7.1f}  {frame[:70]:<70} | {own_count * per_item:6.1f}  "
              f"{own_frame[:70]}")
    print(f"(raw stacks and flame graph: bench/results/profile-{name}.txt, .svg)")

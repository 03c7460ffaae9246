"""Measure the ingress frameworks: aiohttp.web (asyncio and uvloop) vs Starlette on uvicorn.

Run from the repository root: ``python -m bench.frameworks.run``. Needs ``wrk`` on PATH and
the RabbitMQ broker at ``BENCH_AMQP_URL`` (default: the local guest broker).

Each run starts a fresh server process, warms it up, then drives it with
``wrk -t2 -c64 -d10s`` POSTing a ~1.5 KB JSON body. Rounds are interleaved (A, B, C, A, B, C, ...)
so that slow drift on the machine hits every variant alike. Around the measured window it reads
the CPU time of the server, the broker and wrk, and of the whole machine; what is left over is
``other_cores``, the load that something else put on the machine during the run (noise). Each
run waits (briefly) for a quiet machine first; a run with more than ``--noise`` other cores is
rerun (up to ``--retries`` times, within ``--budget``) and the quietest attempt kept; the
discarded attempts are recorded too.
Prints a table and writes ``bench/results/frameworks.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS_FILE = ROOT / "bench" / "results" / "frameworks.json"
AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = "bench.frameworks"
QUEUE = "bench.frameworks.q"
BODY_BYTES = 1500
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_WAIT_S = 3.0  # longest wait for a quiet machine before a run
NOISY_SPREAD = 0.10  # a variant whose req/s spread (max - min) / median exceeds this is flagged

LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "bad_status": %d, "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Variant:
    name: str
    script: str
    args: tuple[str, ...] = ()
    publish: bool = True

    def command(self, port: int) -> list[str]:
        return [sys.executable, str(HERE / self.script), str(port), *self.args]


VARIANTS = (
    Variant("aiohttp", "aiohttp_app.py"),
    Variant("aiohttp+uvloop", "aiohttp_app.py", ("--uvloop",)),
    Variant("starlette+uvicorn", "starlette_app.py"),
    Variant("aiohttp no-publish", "aiohttp_app.py", ("--no-publish",), publish=False),
    Variant("aiohttp+uvloop no-publish", "aiohttp_app.py", ("--uvloop", "--no-publish"), False),
    Variant("starlette+uvicorn no-publish", "starlette_app.py", ("--no-publish",), False),
)


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    bad_status: int
    socket_errors: int


@dataclass(frozen=True)
class CpuSample:
    server_s: float
    broker_s: float | None
    machine_busy_s: float
    wall_s: float


@dataclass(frozen=True)
class RunResult:
    variant: str
    round: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    server_cpu_ms_per_req: float
    broker_cpu_ms_per_req: float | None
    server_cpu_util: float  # cores busy in the server process over the window
    wrk_cpu_s: float
    other_cores: float | None  # machine busy minus server, broker and wrk, per second: noise
    loadavg_1m_before: float


# --- the request body and the wrk script -------------------------------------------------------


def webhook_body(size: int = BODY_BYTES) -> str:
    """A Zenoti-like webhook delivery, padded to ``size`` bytes."""
    payload: dict[str, Any] = {
        "id": "9f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b",
        "event_type": "Guest.Membership.Freeze",
        "created_date": "2024-05-14T09:31:07.123Z",
        "data": {
            "center_id": "c1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8",
            "guest": {"id": "g-7f3e2d1c", "first_name": "Ada", "last_name": "Lovelace"},
            "membership": {"id": "m-42", "status": "Frozen", "freeze_from": "2024-06-01"},
            "notes": "",
        },
    }
    padding = size - len(json.dumps(payload))
    payload["data"]["notes"] = "x" * max(padding, 0)
    return json.dumps(payload)


def write_lua_script(directory: Path) -> Path:
    body = webhook_body()
    if "]==]" in body:
        raise ValueError("the body would end the Lua long string")
    path = directory / "post.lua"
    path.write_text(LUA_TEMPLATE.format(body=body))
    return path


def run_wrk(url: str, script: Path, duration_s: int, connections: int) -> tuple[WrkResult, float]:
    """Run wrk; return its ``done()`` figures and the CPU seconds wrk itself used."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "-s", str(script), url]
    before = children_cpu_s()
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 30, check=True
    )
    return parse_wrk(completed.stdout), children_cpu_s() - before


def parse_wrk(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return WrkResult(**json.loads(line.removeprefix("RESULT ")))
    raise RuntimeError(f"wrk printed no RESULT line:\n{stdout}")


# --- CPU accounting ----------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/<pid>/stat, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds all cores spent neither idle nor in iowait since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def broker_pid() -> int | None:
    """The RabbitMQ node's OS pid (beam.smp), if exactly one is running."""
    pids = [p.parent.name for p in Path("/proc").glob("[0-9]*/comm") if read_comm(p) == "beam.smp"]
    return int(pids[0]) if len(pids) == 1 else None


def read_comm(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def cpu_sample(server: int, broker: int | None) -> CpuSample:
    return CpuSample(
        server_s=process_cpu_s(server),
        broker_s=process_cpu_s(broker) if broker is not None else None,
        machine_busy_s=machine_busy_s(),
        wall_s=time.monotonic(),
    )


def loadavg_1m() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --- broker housekeeping -----------------------------------------------------------------------


async def _purge_queue() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            queue = await channel.get_queue(QUEUE, ensure=True)
            await queue.purge()


async def _delete_topology() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(QUEUE)
        await channel.exchange_delete(EXCHANGE)


async def _broker_version() -> str:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        if connection.transport is None:
            return "?"
        properties = connection.transport.connection.server_properties
        version = properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)


# --- one run -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout_s}s")


@contextlib.contextmanager
def running_server(variant: Variant) -> Iterator[tuple[int, int]]:
    """Start the variant's server; yield (pid, port); stop it afterwards."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            variant.command(port), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, process)
            yield process.pid, port
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_once(variant: Variant, round_no: int, options: argparse.Namespace) -> RunResult:
    asyncio.run(_purge_queue())
    loadavg = loadavg_1m()
    with running_server(variant) as (pid, port):
        url = f"http://127.0.0.1:{port}/hook"
        run_wrk(url, options.script, options.warmup, options.connections)
        before = cpu_sample(pid, options.broker_pid)
        wrk, wrk_cpu_s = run_wrk(url, options.script, options.duration, options.connections)
        after = cpu_sample(pid, options.broker_pid)
    return summarise_run(variant, round_no, wrk, wrk_cpu_s, before, after, loadavg)


def summarise_run(
    variant: Variant,
    round_no: int,
    wrk: WrkResult,
    wrk_cpu_s: float,
    before: CpuSample,
    after: CpuSample,
    loadavg: float,
) -> RunResult:
    requests = max(wrk.requests, 1)
    server_s = after.server_s - before.server_s
    broker_s = None
    if after.broker_s is not None and before.broker_s is not None:
        broker_s = after.broker_s - before.broker_s
    accounted = server_s + wrk_cpu_s + (broker_s or 0.0)
    other_s = after.machine_busy_s - before.machine_busy_s - accounted
    wall_s = after.wall_s - before.wall_s
    return RunResult(
        variant=variant.name,
        round=round_no,
        requests_per_s=wrk.requests / (wrk.duration_us / 1e6),
        p50_ms=wrk.p50_us / 1000,
        p90_ms=wrk.p90_us / 1000,
        p99_ms=wrk.p99_us / 1000,
        max_ms=wrk.max_us / 1000,
        errors=wrk.bad_status + wrk.socket_errors,
        server_cpu_ms_per_req=server_s * 1000 / requests,
        broker_cpu_ms_per_req=broker_s * 1000 / requests if broker_s is not None else None,
        server_cpu_util=server_s / wall_s,
        wrk_cpu_s=wrk_cpu_s,
        other_cores=other_s / wall_s if broker_s is not None else None,
        loadavg_1m_before=loadavg,
    )


# --- the whole benchmark -----------------------------------------------------------------------


@dataclass
class Schedule:
    """Keeps the whole benchmark inside its time budget, retries included."""

    budget_s: float
    planned_runs: int
    started: float = field(default_factory=time.monotonic)
    runs_done: int = 0
    kept_runs: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def can_start(self) -> bool:
        return self.elapsed() < self.budget_s

    def can_retry(self) -> bool:
        """True if one more run still leaves time for every planned run not yet done."""
        if self.runs_done == 0:
            return False
        per_run = self.elapsed() / self.runs_done + QUIET_WAIT_S  # as if every wait were long
        runs_after_this_one = self.planned_runs - self.kept_runs - 1
        return self.elapsed() + (runs_after_this_one + 1) * per_run <= self.budget_s


def disturbed(result: RunResult, options: argparse.Namespace) -> bool:
    return result.other_cores is not None and result.other_cores > options.noise


def wait_for_quiet(options: argparse.Namespace) -> None:
    """Wait (bounded) until the rest of the machine uses less than ``options.noise`` cores."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline:
        before = machine_busy_s()
        time.sleep(0.5)
        if (machine_busy_s() - before) / 0.5 < options.noise:
            return


def measure(
    variant: Variant, round_no: int, options: argparse.Namespace, schedule: Schedule
) -> list[RunResult]:
    """Run once when the machine is quiet; rerun (bounded) if others got busy meanwhile.

    Returns every attempt, the least disturbed first.
    """
    wait_for_quiet(options)
    attempts = [run_once(variant, round_no, options)]
    schedule.runs_done += 1
    print_progress(attempts[-1])
    while disturbed(attempts[-1], options) and len(attempts) <= options.retries:
        if not schedule.can_retry():
            break
        wait_for_quiet(options)
        attempts.append(run_once(variant, round_no, options))
        schedule.runs_done += 1
        print_progress(attempts[-1], retry=True)
    schedule.kept_runs += 1
    return sorted(attempts, key=lambda r: r.other_cores or 0.0)


def run_all(
    variants: Sequence[Variant], options: argparse.Namespace
) -> tuple[list[RunResult], list[RunResult]]:
    """Interleaved rounds; returns (kept runs, discarded disturbed attempts)."""
    schedule = Schedule(options.budget, planned_runs=len(variants) * options.rounds)
    kept: list[RunResult] = []
    discarded: list[RunResult] = []
    for round_no in range(1, options.rounds + 1):
        for variant in variants:
            if not schedule.can_start():
                print(f"time budget of {options.budget}s spent; stopping early", file=sys.stderr)
                return kept, discarded
            best, *rest = measure(variant, round_no, options, schedule)
            kept.append(best)
            discarded.extend(rest)
    return kept, discarded


def print_progress(r: RunResult, retry: bool = False) -> None:
    other = f"{r.other_cores:.2f}" if r.other_cores is not None else "?"
    print(
        f"{'  retry' if retry else 'round'} {r.round} {r.variant:<29}"
        f" {r.requests_per_s:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
        f"  cpu {r.server_cpu_ms_per_req:.3f} ms/req  errors {r.errors}  other {other} cores",
        flush=True,
    )


def summarise(variant: Variant, runs: list[RunResult], noise: float) -> dict[str, Any]:
    rps = [r.requests_per_s for r in runs]
    median_rps = statistics.median(rps)
    spread = (max(rps) - min(rps)) / median_rps if median_rps else 0.0
    brokers = [r.broker_cpu_ms_per_req for r in runs if r.broker_cpu_ms_per_req is not None]
    return {
        "variant": variant.name,
        "publish": variant.publish,
        "runs": len(runs),
        "requests_per_s_median": median_rps,
        "requests_per_s_min": min(rps),
        "requests_per_s_max": max(rps),
        "requests_per_s_spread": spread,
        "noisy": spread > NOISY_SPREAD,
        "p50_ms_median": statistics.median(r.p50_ms for r in runs),
        "p99_ms_median": statistics.median(r.p99_ms for r in runs),
        "server_cpu_ms_per_req_median": statistics.median(r.server_cpu_ms_per_req for r in runs),
        "broker_cpu_ms_per_req_median": statistics.median(brokers) if brokers else None,
        "errors": sum(r.errors for r in runs),
        "disturbed_runs": sum(r.other_cores is not None and r.other_cores > noise for r in runs),
    }


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = (
        f"{'variant':<29} {'req/s':>7} {'spread':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'cpu ms/req':>10} {'broker ms/req':>13} {'errors':>6} {'disturbed':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for s in summaries:
        broker = s["broker_cpu_ms_per_req_median"]
        flag = " *" if s["noisy"] else ""
        print(
            f"{s['variant']:<29} {s['requests_per_s_median']:7.0f}"
            f" {s['requests_per_s_spread']:6.1%} {s['p50_ms_median']:7.2f}"
            f" {s['p99_ms_median']:7.2f} {s['server_cpu_ms_per_req_median']:10.3f}"
            f" {broker if broker is not None else float('nan'):13.3f} {s['errors']:6d}"
            f" {s['disturbed_runs']:9d}{flag}"
        )
    print(f"(medians; spread = (max - min) / median of req/s; * = spread > {NOISY_SPREAD:.0%})")


def versions() -> dict[str, str]:
    found: dict[str, str] = {"python": platform.python_version()}
    for package in ("aiohttp", "starlette", "uvicorn", "uvloop", "httptools", "aio-pika"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip()
    found["rabbitmq"] = asyncio.run(_broker_version())
    return found


def write_results(
    options: argparse.Namespace,
    runs: tuple[list[RunResult], list[RunResult]],
    summaries: list[dict[str, Any]],
) -> None:
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "note": "wrk, the server and the broker share the machine's cores",
        "wrk": f"wrk -t2 -c{options.connections} -d{options.duration}s (POST, JSON body)",
        "body_bytes": len(webhook_body()),
        "warmup_s": options.warmup,
        "rounds": options.rounds,
        "noise_threshold_cores": options.noise,
        "versions": versions(),
    }
    kept, discarded = runs
    document = {
        "meta": meta,
        "summary": summaries,
        "runs": [asdict(r) for r in kept],
        "discarded_noisy_runs": [asdict(r) for r in discarded],
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--budget", type=float, default=330, help="no new run after this (s)")
    parser.add_argument("--noise", type=float, default=0.15, help="other cores that void a run")
    parser.add_argument("--retries", type=int, default=2, help="reruns of a noisy run")
    parser.add_argument("--only", default="", help="comma-separated variant names to run")
    return parser.parse_args(argv)


def select_variants(only: str) -> list[Variant]:
    if not only:
        return list(VARIANTS)
    names = {name.strip() for name in only.split(",")}
    unknown = names - {v.name for v in VARIANTS}
    if unknown:
        raise SystemExit(f"unknown variants: {sorted(unknown)}")
    return [v for v in VARIANTS if v.name in names]


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    variants = select_variants(options.only)
    options.broker_pid = broker_pid()
    with tempfile.TemporaryDirectory() as tmp:
        options.script = write_lua_script(Path(tmp))
        results, discarded = run_all(variants, options)
    asyncio.run(_delete_topology())
    by_variant = {v: [r for r in results if r.variant == v.name] for v in variants}
    summaries = [summarise(v, runs, options.noise) for v, runs in by_variant.items() if runs]
    print_table(summaries)
    write_results(options, (results, discarded), summaries)


if __name__ == "__main__":
    main()

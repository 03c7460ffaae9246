"""A realistic day for one organisation, time-compressed, against the sandbox's API budget.

``python -m bench.api_budget [--mode after|before] [--count 5000]``

5,000 deliveries of the three event kinds over 300 guests, in bursts, go through a real
ingress and 3 worker processes to ``zenoti.enriched``, against the sandbox at 60 calls per 6 s
(Zenoti's 60 per minute, ten times faster). ``after`` is the shipped configuration: one budget
in Redis for all three workers, the cache and single flight. ``before`` is the baseline: no
cache and a bucket per process (no Redis). It prints API calls per enriched event, 429s
received, events enriched per budget window, budget utilisation while a backlog exists, and
p50/p99 from delivery to enriched event; ``--json`` writes them too.
Goals: calls per event at most 0.5, no 429, utilisation at least 90 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from processor import topology
from processor.deliveries import Delivery, build_deliveries
from processor.devstack import wait_ready
from processor.retry import delay_queue_name
from processor.sandbox.organisation import Organisation
from processor.simulator import SimulatorConfig, run_simulator

SECRET, KEY = "bench-secret", "bench-key"
WINDOW, CALLS = 6.0, 60
TIERS = [0.5, 3.0, 12.0, 60.0]
HANDLERS = ("membership-freeze", "guestpass-redeemed", "package-status")
# (share of the deliveries, deliveries per second): a quiet morning, a lunch rush, ...
DAY = ((0.10, 15.0), (0.30, 80.0), (0.15, 15.0), (0.35, 120.0), (0.10, 20.0))


@dataclass
class Result:
    mode: str
    deliveries: int = 0
    enriched: int = 0
    api_calls: int = 0
    throttled_429: int = 0
    calls_per_event: float = 0.0
    events_per_window: float = 0.0
    utilisation_during_backlog: float = 0.0
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    seconds: float = 0.0
    windows: list[dict[str, float]] = field(default_factory=list)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Sandbox, ingress and workers of one run, in their own RabbitMQ virtual host."""

    def __init__(self, mode: str, workers: int) -> None:
        self.vhost = f"zenoti-bench-{uuid.uuid4().hex[:6]}"
        self.amqp = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.ports = {name: free_port() for name in ("sandbox", "ingress")}
        self.mode, self.workers = mode, workers
        self.children: list[subprocess.Popen[bytes]] = []

    def env(self, worker_port: int) -> dict[str, str]:
        env = {**os.environ, "ZENOTI_EVENTS_AMQP_URL": self.amqp,
               "ZENOTI_EVENTS_WEBHOOK_SECRETS": json.dumps([SECRET]),
               "ZENOTI_EVENTS_API_KEY": KEY,
               "ZENOTI_EVENTS_ZENOTI_API_URL": f"http://127.0.0.1:{self.ports['sandbox']}",
               "ZENOTI_EVENTS_INGRESS_PORT": str(self.ports["ingress"]),
               "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(worker_port),
               "ZENOTI_EVENTS_API_CALLS_PER_WINDOW": str(CALLS),
               "ZENOTI_EVENTS_API_WINDOW_SECONDS": str(WINDOW),
               "ZENOTI_EVENTS_RETRY_TIERS": json.dumps(TIERS),
               "ZENOTI_EVENTS_RETRY": '{"max_attempts": 50, "max_age_seconds": 3600}',
               "ZENOTI_EVENTS_LOG_LEVEL": "error", "ZENOTI_EVENTS_LOG_FORMAT": "json",
               "ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS": "0"}
        if self.mode == "after":
            env["ZENOTI_EVENTS_REDIS_URL"] = "redis://127.0.0.1:6379/0"
            env["ZENOTI_EVENTS_REDIS_PREFIX"] = self.vhost
        else:
            env.pop("ZENOTI_EVENTS_REDIS_URL", None)
            env["ZENOTI_EVENTS_API_CACHE_ENABLED"] = "false"
        return env

    def start(self) -> None:
        for command in (["rabbitmqctl", "add_vhost", self.vhost],
                        ["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*",
                         ".*", ".*"]):
            subprocess.run(command, check=True, capture_output=True)
        self._spawn(0, "sandbox", "--port", str(self.ports["sandbox"]), "--api-key", KEY,
                    "--calls-per-window", str(CALLS), "--window-seconds", str(WINDOW))
        wait_ready(f"http://127.0.0.1:{self.ports['sandbox']}/_sandbox/health")
        self._spawn(free_port(), "ingress")
        wait_ready(f"http://127.0.0.1:{self.ports['ingress']}/readyz")
        for _ in range(self.workers):
            port = free_port()
            self._spawn(port, "worker")
            wait_ready(f"http://127.0.0.1:{port}/readyz")

    def _spawn(self, worker_port: int, *argv: str) -> None:
        self.children.append(subprocess.Popen(
            [sys.executable, "-m", "processor.cli", *argv], env=self.env(worker_port),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(timeout=30)
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True)

    def stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports['sandbox']}/_sandbox/stats"
        stats: dict[str, Any] = httpx.get(url, timeout=5).json()
        return stats


@asynccontextmanager
async def collector(amqp: str) -> AsyncIterator[dict[str, float]]:
    """Latency (s) from delivery to enriched event, per event key, while open."""
    seen: dict[str, float] = {}
    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(500)
        await topology.declare(channel, [])
        exchange = await channel.get_exchange(topology.ENRICHED)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received = datetime.fromisoformat(str(message.headers["received_at"]))
            key = (message.message_id or "").rsplit(":", 2)[0]
            seen.setdefault(key, time.time() - received.timestamp())
            await message.ack()

        await queue.consume(on_message)
        yield seen


async def backlog(amqp: str) -> int:
    names = [topology.queue_name(h) for h in HANDLERS]
    names += [delay_queue_name(h, t) for h in HANDLERS for t in TIERS]
    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel()
        total = 0
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total


async def send_day(url: str, deliveries: list[Delivery]) -> None:
    start = 0
    for share, rate in DAY:
        end = start + round(share * len(deliveries))
        part = deliveries[start:end] if (share, rate) != DAY[-1] else deliveries[start:]
        config = SimulatorConfig(url=url, secret=SECRET, count=len(part), rate=rate,
                                 concurrency=32, max_resends=10)
        await run_simulator(config, deliveries=part)
        start = end


async def run(mode: str, count: int, max_seconds: float, workers: int) -> Result:
    processes = Processes(mode, workers)
    processes.start()
    result = Result(mode)
    try:
        org = Organisation.generate(1, guests=300)  # the sandbox serves seed 1
        deliveries = build_deliveries(org, count, seed=7, unknown_ratio=0.0)
        result.deliveries = len(deliveries)
        url = f"http://127.0.0.1:{processes.ports['ingress']}/webhooks/zenoti"
        async with collector(processes.amqp) as seen:
            started = time.monotonic()
            sending = asyncio.create_task(send_day(url, deliveries))
            result.windows = await watch(processes, seen, len(deliveries), started, max_seconds)
            sending.cancel()
            result.seconds = time.monotonic() - started
            latencies = sorted(seen.values())
        summarise(result, processes.stats(), latencies)
    finally:
        processes.stop()
    return result


async def watch(processes: Processes, seen: dict[str, float], expected: int, started: float,
                max_seconds: float) -> list[dict[str, float]]:
    """One sample per budget window: calls made, events enriched, backlog."""
    windows, last_calls, last_seen, last_t = [], 0, 0, 0.0
    while len(seen) < expected and time.monotonic() - started < max_seconds:
        await asyncio.sleep(WINDOW)
        calls = int(processes.stats()["calls"])
        waiting = await backlog(processes.amqp)
        now = time.monotonic() - started
        windows.append({"t": round(now, 1), "dt": now - last_t, "calls": calls - last_calls,
                        "enriched": len(seen) - last_seen, "backlog": waiting})
        last_t = now
        print(f"  t={windows[-1]['t']:>6}s calls={calls - last_calls:>3} "
              f"enriched={len(seen) - last_seen:>4} backlog={waiting}", flush=True)
        last_calls, last_seen = calls, len(seen)
    return windows


def summarise(result: Result, stats: dict[str, Any], latencies: list[float]) -> None:
    result.enriched = len(latencies)
    result.api_calls = int(stats["calls"])
    result.throttled_429 = int(stats["throttled"])
    result.calls_per_event = round(result.api_calls / max(result.enriched, 1), 3)
    full = [w for w in result.windows if w["backlog"] > 0]
    result.events_per_window = round(statistics.mean(w["enriched"] for w in result.windows), 1) \
        if result.windows else 0.0
    # Tokens available in a sample = the refill over its duration (the burst is not counted).
    offered = sum(CALLS * w["dt"] / WINDOW for w in full)
    result.utilisation_during_backlog = round(sum(w["calls"] for w in full) / offered, 3) \
        if full else 0.0
    if latencies:
        result.latency_p50_s = round(latencies[len(latencies) // 2], 2)
        result.latency_p99_s = round(latencies[int(len(latencies) * 0.99) - 1], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["after", "before"], default="after")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args.mode, args.count, args.max_seconds, args.workers))
    summary = {k: v for k, v in asdict(result).items() if k != "windows"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()

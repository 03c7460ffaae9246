"""A day of one organisation, time-compressed, against the sandbox's API budget.

``python -m bench.api_budget [--guests 20000] [--centers 20] [--seed 1] [--count 5000]
[--mix freeze=0.4,guestpass=0.3,package=0.3] [--mode shipped|uncached] [--workers 3]
[--max-seconds 1800] [--window-seconds 6] [--json PATH]``

The day is ``processor.dev.sandbox.day``'s: ``--count`` deliveries about an organisation of
``--guests`` guests over ``--centers`` centers (the sandbox serves the same one, by ``--seed``),
most of them about a guest seen once that day, with the correlated bursts a real day has.
``--guests 300 --centers 3`` is the earlier benchmark's day, where each guest comes back
dozens of times and the cache wins. The deliveries go through a real ingress and
``--workers`` worker processes to ``zenoti.enriched``, sent in the bursts of ``DAY``.

Time is compressed: the sandbox grants 60 calls per ``--window-seconds`` (6 s: Zenoti's
minute ten times faster), and the workers' budget and retry tiers are scaled alike, so that
the budget, not the run's length, decides the figures. Latencies are in bench seconds (times
60 / window for Zenoti's). ``shipped`` is today's configuration (one budget in Redis for all
workers, the cache, single flight); ``uncached`` the baseline (no cache, a bucket per process).

``--max-seconds`` bounds the run. Then sending stops, the workers stop gracefully, and every
delivery a handler serves is accounted for: enriched; queued (still in a work or delay queue:
not lost); dead-lettered; unsent (the bound came first); or lost (accepted, or refused for
good, and none of the others). ``calls_per_event`` is every API request the sandbox saw,
start-up included, per enriched event; ``by_kind`` splits the events by kind, and with a mix
of one kind, ``kind`` names it and ``calls_per_event`` is that kind's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import redis

from bench.stats import percentile
from processor.broker import topology
from processor.broker.topology import delay_queue_name
from processor.dev import launcher
from processor.dev.deliveries import KNOWN_TYPES, Delivery
from processor.dev.launcher import free_port
from processor.dev.sandbox.day import EVEN_MIX, Day, parse_mix, plan_day
from processor.dev.sandbox.organisation import Organisation
from processor.dev.simulator import SimulatorConfig, SimulatorReport, run_simulator
from processor.dev.stack import Stack
from processor.settings import DEFAULT_TENANT

SECRET, KEY = "bench-secret", "bench-key"
REDIS = "redis://127.0.0.1:6379/0"
CALLS = 60
ZENOTI_TIERS = (5.0, 30.0, 120.0, 600.0)  # the delay tiers, in Zenoti's (uncompressed) seconds
HANDLERS = ("membership-freeze", "guestpass-redeemed", "package-status")
# (share of the deliveries, deliveries per second): a quiet morning, a lunch rush, ...
DAY = ((0.10, 15.0), (0.30, 80.0), (0.15, 15.0), (0.35, 120.0), (0.10, 20.0))


@dataclass
class Result:
    mode: str
    guests: int
    centers: int
    seed: int
    mix: dict[str, float]
    workers: int
    window_seconds: float
    kind: str | None = None  # the mix's one kind, when it has one
    deliveries: int = 0
    handled: int = 0  # deliveries of types a handler serves; the others are parked by design
    once_seen_share: float = 0.0
    burst_pairs: int = 0
    accepted: int = 0  # handled deliveries the ingress answered 2xx
    enriched: int = 0
    queued: int = 0
    dead_lettered: int = 0
    unsent: int = 0
    lost: int = 0
    api_calls: int = 0
    throttled_429: int = 0
    calls_per_event: float = 0.0
    events_per_window: float = 0.0
    utilisation_during_backlog: float = 0.0
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    seconds: float = 0.0
    finished: bool = False  # every handled delivery enriched within the bound
    calls_by_endpoint: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    windows: list[dict[str, float]] = field(default_factory=list)


@dataclass
class BenchStack(Stack):
    """The run's services; ``uncached`` ones know no Redis, even one set in this process's
    environment."""

    uncached: bool = False

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        if self.uncached:
            env.pop("ZENOTI_EVENTS_REDIS_URL", None)
        return env


class Processes:
    """Sandbox, ingress and workers of one run, in their own RabbitMQ virtual host and Redis
    prefix, both removed by ``stop``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.vhost = f"zenoti-bench-{uuid.uuid4().hex[:6]}"
        self.amqp = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.stack = BenchStack(self.amqp, secret=SECRET, api_key=KEY, output="capture",
                                settings=self.settings(), uncached=args.mode != "shipped")
        self.workers: list[subprocess.Popen[bytes]] = []

    def settings(self) -> dict[str, str]:
        window = self.args.window_seconds
        settings = {"ZENOTI_EVENTS_API_CALLS_PER_WINDOW": str(CALLS),
                    "ZENOTI_EVENTS_API_WINDOW_SECONDS": str(window),
                    "ZENOTI_EVENTS_RETRY_TIERS": json.dumps(tiers(window)),
                    "ZENOTI_EVENTS_RETRY": '{"max_attempts": 50, "max_age_seconds": 3600}',
                    "ZENOTI_EVENTS_LOG_LEVEL": "error",
                    "ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS": "0"}
        if self.args.mode == "shipped":
            return {**settings, "ZENOTI_EVENTS_REDIS_URL": REDIS,
                    "ZENOTI_EVENTS_REDIS_PREFIX": self.vhost}
        return {**settings, "ZENOTI_EVENTS_API_CACHE_ENABLED": "false"}

    def start(self) -> None:
        for command in (["rabbitmqctl", "add_vhost", self.vhost],
                        ["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*",
                         ".*", ".*"]):
            subprocess.run(command, check=True, capture_output=True)
        a = self.args
        self.stack.sandbox("--seed", str(a.seed), "--guests", str(a.guests),
                           "--centers", str(a.centers), "--calls-per-window", str(CALLS),
                           "--window-seconds", str(a.window_seconds), timeout=120)
        self.stack.ingress()
        self.workers = [self.stack.worker(port=free_port()) for _ in range(a.workers)]

    def stop_workers(self) -> None:
        """SIGTERM: each worker finishes what it holds, and what it had not started goes back
        to its queue."""
        launcher.stop(self.workers, timeout=60)

    def stop(self) -> None:
        self.stack.stop()
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True)
        if self.args.mode == "shipped":
            client = redis.Redis.from_url(REDIS)
            for batch in _batches(client.scan_iter(match=f"{self.vhost}:*", count=1000)):
                client.unlink(*batch)

    def stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.stack.sandbox_port}/_sandbox/stats"
        stats: dict[str, Any] = httpx.get(url, timeout=5).json()
        return stats


def tiers(window_seconds: float) -> list[float]:
    """Zenoti-time delay tiers compressed as the budget window is."""
    return [round(t * window_seconds / 60.0, 3) for t in ZENOTI_TIERS]


def _batches(keys: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@asynccontextmanager
async def collector(amqp: str) -> AsyncIterator[dict[str, float]]:
    """Latency (s) from delivery to enriched event, per input message id, while open."""
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
            # <tenant>:<event key>:<handler>:<output>: the input's id is the first two parts
            key = (message.message_id or "").rsplit(":", 2)[0]
            seen.setdefault(key, time.time() - received.timestamp())
            await message.ack()

        await queue.consume(on_message)
        yield seen


async def backlog(amqp: str, window: float) -> int:
    """Messages ready in the work and delay queues (those held by workers not counted)."""
    counts = await _queue_counts(amqp, _waiting_queues(window))
    return sum(counts)


def _waiting_queues(window: float) -> list[str]:
    return [name for h in HANDLERS
            for name in (*(delay_queue_name(h, t) for t in tiers(window)), topology.queue_name(h))]


async def _queue_counts(amqp: str, names: Sequence[str]) -> list[int]:
    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel()
        declared = [await channel.declare_queue(name, passive=True) for name in names]
        return [queue.declaration_result.message_count or 0 for queue in declared]


async def leftovers(amqp: str, window: float) -> tuple[set[str], set[str]]:
    """Message ids still waiting (delay queues read before work queues, so that none moves
    unseen between them) and dead-lettered; read off the queues once the workers stopped."""
    waiting, dead = set(), set()
    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel()
        for name in _waiting_queues(window):
            waiting |= await _take_all(channel, name)
        for handler in HANDLERS:
            dead |= await _take_all(channel, topology.dead_queue_name(handler))
    return waiting, dead


async def _take_all(channel: aio_pika.abc.AbstractChannel, name: str) -> set[str]:
    queue = await channel.declare_queue(name, passive=True)
    ids = set()
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        ids.add(message.message_id or "")
    return ids


async def settle(seen: dict[str, float], quiet: float = 2.0, limit: float = 30.0) -> None:
    """Return once no enriched event came for ``quiet`` seconds (or after ``limit``)."""
    deadline, last, still = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        if len(seen) != last:
            last, still = len(seen), time.monotonic()
        elif time.monotonic() - still >= quiet:
            return
        await asyncio.sleep(0.25)


async def send_day(url: str, deliveries: Sequence[Delivery], report: SimulatorReport) -> None:
    start = 0
    for index, (share, rate) in enumerate(DAY):
        end = len(deliveries) if index == len(DAY) - 1 else start + round(share * len(deliveries))
        part = deliveries[start:end]
        config = SimulatorConfig(url=url, secret=SECRET, count=len(part), rate=rate,
                                 concurrency=32, max_resends=10)
        await run_simulator(config, deliveries=part, report=report)
        start = end


async def watch(processes: Processes, seen: dict[str, float], expected: int, started: float,
                max_seconds: float) -> list[dict[str, float]]:
    """One sample per budget window: calls made, events enriched, backlog."""
    window = processes.args.window_seconds
    windows, last_calls, last_seen, last_t = [], 0, 0, 0.0
    while len(seen) < expected and time.monotonic() - started < max_seconds:
        await asyncio.sleep(window)
        calls = int(processes.stats()["calls"])
        waiting = await backlog(processes.amqp, window)
        now = time.monotonic() - started
        windows.append({"t": round(now, 1), "dt": now - last_t, "calls": calls - last_calls,
                        "enriched": len(seen) - last_seen, "backlog": waiting})
        last_t = now
        print(f"  t={windows[-1]['t']:>6}s calls={calls - last_calls:>3} "
              f"enriched={len(seen) - last_seen:>4} backlog={waiting}", flush=True)
        last_calls, last_seen = calls, len(seen)
    return windows


async def run(args: argparse.Namespace) -> Result:
    org = Organisation.generate(args.seed, guests=args.guests, centers=args.centers)
    day = plan_day(org, args.count, args.seed, args.mix)
    result = Result(args.mode, args.guests, args.centers, args.seed, dict(args.mix),
                    args.workers, args.window_seconds)
    processes = Processes(args)
    try:
        processes.start()
        url = processes.stack.webhook_url
        report = SimulatorReport()
        async with collector(processes.amqp) as seen:
            started = time.monotonic()
            sending = asyncio.create_task(send_day(url, day.deliveries, report))
            result.windows = await watch(processes, seen, day.handled(), started,
                                         args.max_seconds)
            result.seconds = round(time.monotonic() - started, 1)
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending
            processes.stop_workers()
            await settle(seen)
            waiting, dead = await leftovers(processes.amqp, args.window_seconds)
            account(result, day, report, dict(seen), waiting, dead)
        summarise(result, processes.stats())
    finally:
        processes.stop()
    return result


def account(result: Result, day: Day, report: SimulatorReport, seen: Mapping[str, float],
            waiting: set[str], dead: set[str]) -> None:
    """Where every handled delivery ended, and latencies overall and per kind."""
    kinds = {f"{DEFAULT_TENANT}:{d.event_id}": kind for d, kind in zip(day.deliveries, day.kinds,
                                                                        strict=True)
             if d.event_type in KNOWN_TYPES}
    accepted = {f"{DEFAULT_TENANT}:{i}" for i in report.accepted_ids} & kinds.keys()
    refused = {f"{DEFAULT_TENANT}:{i}" for i in report.failed_ids} & kinds.keys()
    enriched = seen.keys() & kinds.keys()
    queued = (waiting & kinds.keys()) - enriched
    dead_lettered = (dead & kinds.keys()) - enriched - queued
    result.deliveries, result.handled = len(day.deliveries), len(kinds)
    result.once_seen_share, result.burst_pairs = round(day.once_seen_share(), 3), len(day.bursts)
    result.accepted, result.enriched = len(accepted), len(enriched)
    result.queued, result.dead_lettered = len(queued), len(dead_lettered)
    result.unsent = len(kinds.keys() - accepted - refused - enriched)
    result.lost = len((accepted | refused) - enriched - queued - dead_lettered)
    result.finished = result.enriched == result.handled
    latencies = [seen[key] for key in enriched]
    result.latency_p50_s, result.latency_p99_s = _p(latencies, 50), _p(latencies, 99)
    for kind in sorted(set(kinds.values())):
        mine = [seen[key] for key in enriched if kinds[key] == kind]
        result.by_kind[kind] = {"handled": sum(k == kind for k in kinds.values()),
                                "enriched": len(mine), "latency_p50_s": _p(mine, 50),
                                "latency_p99_s": _p(mine, 99)}
    if len(result.mix) == 1:
        result.kind = next(iter(result.mix))


def _p(values: Sequence[float], q: float) -> float:
    return round(percentile(values, q), 2) if values else 0.0


def summarise(result: Result, stats: Mapping[str, Any]) -> None:
    result.api_calls = int(stats["calls"])
    result.throttled_429 = int(stats["throttled"])
    result.calls_by_endpoint = {k: v for k, v in stats["by_endpoint"].items() if v}
    result.calls_per_event = round(result.api_calls / max(result.enriched, 1), 3)
    windows = result.windows
    if windows:
        result.events_per_window = round(sum(w["enriched"] for w in windows) / len(windows), 1)
    full = [w for w in windows if w["backlog"] > 0]
    # Tokens available in a sample = the refill over its duration (the burst is not counted).
    offered = sum(CALLS * w["dt"] / result.window_seconds for w in full)
    if full:
        result.utilisation_during_backlog = round(sum(w["calls"] for w in full) / offered, 3)


def _mix(text: str) -> dict[str, float]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--guests", type=int, default=20_000, help="of the organisation")
    parser.add_argument("--centers", type=int, default=20, help="of the organisation")
    parser.add_argument("--seed", type=int, default=1, help="of the organisation and the day")
    parser.add_argument("--count", type=int, default=5000, help="deliveries in the day")
    parser.add_argument("--mix", type=_mix, default=dict(EVEN_MIX),
                        help='shares of kinds, e.g. "freeze=0.4,guestpass=0.3,package=0.3"')
    parser.add_argument("--mode", default="shipped",
                        choices=["shipped", "uncached", "after", "before"],
                        help="after and before are the earlier names of shipped and uncached")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--max-seconds", type=float, default=1800.0,
                        help="bound of the run, from the first delivery")
    parser.add_argument("--window-seconds", type=float, default=6.0,
                        help="the sandbox's budget window for 60 calls (Zenoti's: 60)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    return parser


def main() -> None:
    args = _parser().parse_args()
    args.mode = {"after": "shipped", "before": "uncached"}.get(args.mode, args.mode)
    result = asyncio.run(run(args))
    summary = {k: v for k, v in asdict(result).items() if k != "windows"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()

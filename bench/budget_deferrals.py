"""How often a message waits for the API budget in the broker before it is enriched.

``python -m bench.budget_deferrals [--events 400] [--guests 20000] [--centers 20]
[--workers 2] [--code DIR]``

A backlog of one tenant's events (400 by default, about guests of an organisation of 20,000
over 20 centers, so that most need calls of their own; all delivered at once)
goes through a real ingress and worker processes sharing one budget in Redis, against the
sandbox at 60 calls per 6 s: Zenoti's 60 a minute, ten times faster, with everything that is
a duration compressed alike (short wait 0.2 s, delay tiers 0.5 s, 3 s, 12 s, 1 min, 6 min for
5 s, 30 s, 2 min, 10 min, 1 h). It counts the deferrals (``BudgetExhausted``: a republish,
a confirm and an ack each, in the workers' ``zenoti_events_api_budget_deferred_total``) per
enriched event, until every event is enriched or ``--max-seconds``. ``--code DIR`` runs the
processes from another checkout (an older commit, for the figure before a change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.api_budget import collector
from processor.dev.deliveries import build_deliveries
from processor.dev.launcher import free_port
from processor.dev.sandbox.organisation import Organisation
from processor.dev.simulator import SimulatorConfig, run_simulator
from processor.dev.stack import Stack

SECRET, KEY = "bench-secret", "bench-key"
WINDOW, CALLS = 6.0, 60
TIERS = [0.5, 3.0, 12.0, 60.0, 360.0]
SHORT_WAIT = 0.2
SEED = 1  # of the organisation, which the sandbox serves too
REDIS = "redis://127.0.0.1:6379/0"
DEFERRED = "zenoti_events_api_budget_deferred_total"


@dataclass
class Result:
    events: int
    workers: int
    enriched: int = 0
    deferrals: int = 0
    deferrals_per_enriched: float = 0.0
    api_calls: int = 0
    throttled_429: int = 0
    seconds: float = 0.0
    # Every window: seconds since the start, enriched and deferrals so far.
    samples: list[dict[str, float]] = field(default_factory=list)


class Processes:
    """Sandbox, ingress and workers in their own virtual host and Redis prefix, run from the
    checkout ``code`` (the working directory comes first on ``sys.path``)."""

    def __init__(self, workers: int, code: Path, org: tuple[int, int]) -> None:
        self.vhost = f"zenoti-deferrals-{uuid.uuid4().hex[:6]}"
        self.amqp = f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"
        self.worker_ports = [free_port() for _ in range(workers)]
        self.org = org
        self.stack = Stack(self.amqp, secret=SECRET, api_key=KEY, cwd=code, output="capture",
                           settings=self.settings())

    def settings(self) -> dict[str, str]:
        return {"ZENOTI_EVENTS_API_CALLS_PER_WINDOW": str(CALLS),
                "ZENOTI_EVENTS_API_WINDOW_SECONDS": str(WINDOW),
                "ZENOTI_EVENTS_API_SHORT_WAIT": str(SHORT_WAIT),
                "ZENOTI_EVENTS_RETRY_TIERS": json.dumps(TIERS),
                "ZENOTI_EVENTS_RETRY": '{"max_attempts": 50, "max_age_seconds": 86400}',
                "ZENOTI_EVENTS_REDIS_URL": REDIS,
                "ZENOTI_EVENTS_REDIS_PREFIX": self.vhost,
                "ZENOTI_EVENTS_LOG_LEVEL": "error",
                "ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS": "0"}

    def start(self) -> None:
        for command in (["rabbitmqctl", "add_vhost", self.vhost],
                        ["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*",
                         ".*", ".*"]):
            subprocess.run(command, check=True, capture_output=True)
        self.stack.sandbox("--seed", str(SEED), "--guests", str(self.org[0]),
                           "--centers", str(self.org[1]), "--calls-per-window", str(CALLS),
                           "--window-seconds", str(WINDOW), timeout=120)
        self.stack.ingress()
        for port in self.worker_ports:
            self.stack.worker(port=port)

    def stop(self) -> None:
        self.stack.stop()
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True)
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(match=f"{self.vhost}:*", count=1000):
            client.delete(key)  # this run's keys only: the prefix is the virtual host's name
        client.close()

    def deferrals(self) -> int:
        total = 0.0
        for port in self.worker_ports:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith(DEFERRED + "{"))
        return int(total)

    def sandbox_stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.stack.sandbox_port}/_sandbox/stats"
        stats: dict[str, Any] = httpx.get(url, timeout=5).json()
        return stats


async def run(events: int, workers: int, code: Path, max_seconds: float,
              org_size: tuple[int, int]) -> Result:
    processes = Processes(workers, code, org_size)
    result = Result(events, workers)
    try:
        processes.start()  # inside: a start that fails stops what it started
        org = Organisation.generate(SEED, guests=org_size[0], centers=org_size[1])
        deliveries = build_deliveries(org, events, seed=9, unknown_ratio=0.0)
        config = SimulatorConfig(
            url=processes.stack.webhook_url, secret=SECRET,
            count=len(deliveries), rate=0, concurrency=32, max_resends=10)
        async with collector(processes.amqp) as seen:
            started = time.monotonic()
            await run_simulator(config, deliveries=deliveries)
            while len(seen) < events and time.monotonic() - started < max_seconds:
                await asyncio.sleep(WINDOW)
                result.samples.append({"t": round(time.monotonic() - started, 1),
                                       "enriched": len(seen),
                                       "deferrals": processes.deferrals()})
                print(f"  {result.samples[-1]}", flush=True)
            result.seconds = round(time.monotonic() - started, 1)
            result.enriched = len(seen)
        result.deferrals = processes.deferrals()
        stats = processes.sandbox_stats()
        result.api_calls, result.throttled_429 = int(stats["calls"]), int(stats["throttled"])
        result.deferrals_per_enriched = round(result.deferrals / max(result.enriched, 1), 2)
    finally:
        processes.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--guests", type=int, default=20_000, help="of the organisation")
    parser.add_argument("--centers", type=int, default=20, help="of the organisation")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--code", type=Path, default=Path.cwd(),
                        help="checkout to run the processes from (default: this one)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.workers, args.code.resolve(), args.max_seconds,
                             (args.guests, args.centers)))
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "samples"}, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()

"""``zenoti-events up``: the whole system on this machine, so a newcomer sees events flow.

Starts the sandbox (a stand-in Zenoti API), the ingress, a worker and ``tap`` as child
processes against the local RabbitMQ, then the simulator posts signed deliveries. Ctrl-C (or
``--seconds``) stops everything gracefully. Demo credentials only; never use them for real.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from processor.settings import Settings

DEMO_SECRET = "demo-webhook-secret"
DEMO_KEY = "demo-api-key"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("up", help="run sandbox, ingress, worker, tap and the simulator")
    parser.add_argument("--rate", type=float, default=2.0, help="deliveries per second")
    parser.add_argument("--count", type=int, default=100, help="deliveries to simulate")
    parser.add_argument("--seconds", type=float, default=0, help="stop after S s (0: Ctrl-C)")
    parser.add_argument("--ingress-port", type=int, default=8080)
    parser.add_argument("--sandbox-port", type=int, default=8090)
    parser.add_argument("--worker-port", type=int, default=9100)
    parser.set_defaults(command=_run)


def _env(args: argparse.Namespace, settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ZENOTI_EVENTS_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ZENOTI_EVENTS_WEBHOOK_SECRETS": f'["{DEMO_SECRET}"]',
        "ZENOTI_EVENTS_API_KEY": DEMO_KEY,
        "ZENOTI_EVENTS_ZENOTI_API_URL": f"http://127.0.0.1:{args.sandbox_port}",
        "ZENOTI_EVENTS_INGRESS_PORT": str(args.ingress_port),
        "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(args.worker_port),
        "ZENOTI_EVENTS_LOG_FORMAT": os.environ.get("ZENOTI_EVENTS_LOG_FORMAT", "console"),
    }


def _spawn(env: dict[str, str], *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "processor.cli", *argv], env=env)


def wait_ready(
    url: str, child: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Return once ``url`` answers 200; ``RuntimeError`` if ``child`` exits first or time
    runs out. Used by ``up``, the tests and the benchmarks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"process exited with {child.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready within {timeout:g} s")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    env = _env(args, settings)
    children = [_spawn(env, "sandbox", "--port", str(args.sandbox_port), "--api-key", DEMO_KEY)]
    wait_ready(f"http://127.0.0.1:{args.sandbox_port}/_sandbox/health")
    children.append(_spawn(env, "ingress"))
    children.append(_spawn(env, "worker"))
    wait_ready(f"http://127.0.0.1:{args.ingress_port}/readyz")
    wait_ready(f"http://127.0.0.1:{args.worker_port}/readyz")
    children.append(_spawn(env, "tap"))
    url = f"http://127.0.0.1:{args.ingress_port}/webhooks/zenoti"
    children.append(_spawn(env, "simulate", "--url", url, "--secret", DEMO_SECRET,
                           "--rate", str(args.rate), "--count", str(args.count)))
    print(f"zenoti-events up: ingress {url}, metrics :{args.ingress_port}/metrics "
          f"and :{args.worker_port}/metrics; Ctrl-C stops", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        _wait(args.seconds)
    _stop(children)
    return 0


def _wait(seconds: float) -> None:
    deadline = time.monotonic() + seconds if seconds else float("inf")
    while time.monotonic() < deadline:
        time.sleep(0.5)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()

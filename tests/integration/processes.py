"""Running the real processes (sandbox, ingress, worker) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from processor.dev.stack import wait_ready

SECRET = "e2e-webhook-secret"
API_KEY = "e2e-api-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stack:
    """Ports and environment of one test's processes."""

    amqp_url: str
    sandbox_port: int = field(default_factory=free_port)
    ingress_port: int = field(default_factory=free_port)
    worker_port: int = field(default_factory=free_port)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ZENOTI_EVENTS_AMQP_URL": self.amqp_url,
            "ZENOTI_EVENTS_WEBHOOK_SECRETS": f'["{SECRET}"]',
            "ZENOTI_EVENTS_API_KEY": API_KEY,
            "ZENOTI_EVENTS_ZENOTI_API_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "ZENOTI_EVENTS_INGRESS_HOST": "127.0.0.1",
            "ZENOTI_EVENTS_INGRESS_PORT": str(self.ingress_port),
            "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(self.worker_port),
            "ZENOTI_EVENTS_LOG_FORMAT": "json",
            "ZENOTI_EVENTS_RECONNECT_MAX_DELAY": "1",
        }

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}/webhooks/zenoti"

    def start(self, *argv: str, ready: str | None = None) -> subprocess.Popen[bytes]:
        child = subprocess.Popen([sys.executable, "-m", "processor.cli", *argv], env=self.env,
                                 stdout=subprocess.DEVNULL)
        self.children.append(child)
        if ready:
            wait_ready(ready, child)
        return child

    def sandbox(self, *extra: str) -> subprocess.Popen[bytes]:
        return self.start("sandbox", "--port", str(self.sandbox_port), "--api-key", API_KEY,
                          *extra, ready=f"http://127.0.0.1:{self.sandbox_port}/_sandbox/health")

    def ingress(self) -> subprocess.Popen[bytes]:
        return self.start("ingress", ready=f"http://127.0.0.1:{self.ingress_port}/readyz")

    def worker(self, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
        ready = f"http://127.0.0.1:{self.worker_port}/readyz" if wait else None
        return self.start("worker", *extra, ready=ready)

    def stop(self) -> list[int | None]:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for child in self.children:
            try:
                codes.append(child.wait(timeout=30))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append(None)
        return codes


__all__ = ["wait_ready"]


@contextmanager
def stack(amqp_url: str) -> Iterator[Stack]:
    running = Stack(amqp_url)
    try:
        yield running
    finally:
        running.stop()

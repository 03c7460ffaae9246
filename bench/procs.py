"""Starting the measured processes, waiting until they serve, and stopping them.

Each process runs ``python -m <module>`` from the repository root with its output in a
temporary file, shown (the last lines) only when it fails to start. ``stop`` sends SIGTERM and
waits, then kills: a scenario never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx

from bench.broker import URL
from bench.workload import SECRET

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ours_env(**extra: str) -> dict[str, str]:
    """The environment of our ingress and worker: production defaults, the bench vhost.
    ``BENCH_OURS_FROM`` (``--ours-from``) puts another checkout's code first, for before/after."""
    other = os.environ.get("BENCH_OURS_FROM")
    return {
        **os.environ,
        "PYTHONPATH": f"{other}{os.pathsep}{ROOT}" if other else str(ROOT),
        "ZENOTI_EVENTS_AMQP_URL": URL,
        "ZENOTI_EVENTS_WEBHOOK_SECRETS": f'["{SECRET}"]',
        "ZENOTI_EVENTS_API_KEY": "bench-api-key",  # never used: the bench handler calls no API
        "ZENOTI_EVENTS_ZENOTI_API_URL": "http://127.0.0.1:9",
        "ZENOTI_EVENTS_INGRESS_HOST": "127.0.0.1",
        "ZENOTI_EVENTS_LOG_FORMAT": "json",
        **extra,
    }


class Process:
    """One started process; ``pid`` is the Python process itself (not a shell)."""

    def __init__(self, module: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT, env=dict(env or {**os.environ, "PYTHONPATH": str(ROOT)}),
        )
        self.pid = self.popen.pid

    def tail(self, chars: int = 3000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Return once ``url`` answers 200; raise with the process's output otherwise."""
        self.wait_until(lambda: _answers(url), timeout, what=url)

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"exited with {self.popen.returncode}:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} not ready within {timeout} s:\n{self.tail()}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[tuple[Process, ...]]:
    """Stop ``processes`` on leaving, whatever happened."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()

"""Starting the measured processes, waiting until they serve, and stopping them, with the one
launcher (``processor.dev.launcher``).

Each process runs ``python -m <module>`` from the repository root with its output captured,
shown (the last lines) only when it fails to start. ``stop`` sends SIGTERM and waits, then
kills; a process that is not ready in time is stopped before the error is raised: a scenario
never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from bench.broker import URL
from bench.workload import SECRET
from processor.dev.launcher import Children, free_port
from processor.dev.stack import Stack

__all__ = ["ROOT", "Process", "free_port", "ours_env", "running"]

ROOT = Path(__file__).resolve().parent.parent


def ours_env(**extra: str) -> dict[str, str]:
    """The environment of our ingress and worker: production defaults, the bench vhost.
    ``BENCH_OURS_FROM`` (``--ours-from``) puts another checkout's code first, for before/after."""
    other = os.environ.get("BENCH_OURS_FROM")
    # The bench handler calls no API: the key is never used, the API URL never answers.
    services = Stack(URL, secret=SECRET, api_key="bench-api-key", sandbox_port=9).env
    return {**services, "PYTHONPATH": f"{other}{os.pathsep}{ROOT}" if other else str(ROOT),
            **extra}


class Process:
    """One started process; ``pid`` is the Python process itself (not a shell)."""

    def __init__(self, module: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        self._launcher = Children(cwd=ROOT, output="capture", stop_timeout=15.0)
        self.popen = self._launcher.spawn(
            *args, module=module, env=env or {**os.environ, "PYTHONPATH": str(ROOT)})
        self.pid = self.popen.pid

    def tail(self, chars: int = 3000) -> str:
        return self._launcher.tail(self.popen, chars)

    def stop(self, timeout: float = 15.0) -> None:
        self._launcher.stop(timeout)

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Return once ``url`` answers 200; else stop the process and raise ``NotReady``
        with its output."""
        self._launcher.wait_ready(self.popen, url, timeout)


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[tuple[Process, ...]]:
    """Stop ``processes`` on leaving, whatever happened."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()

"""What the machine and its processes spend: CPU seconds, resident memory, and who else ran.

Read from ``/proc`` (Linux), so the figures cost nothing to take and need no agent inside the
measured process. ``other_cores`` is the machine's busy time minus what the measured processes
used, per second of wall clock: the load somebody else put on the machine meanwhile (noise).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0.0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (0.0 once it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * _PAGE / 2**20


def machine_busy_seconds() -> float:
    """CPU seconds every core spent neither idle nor waiting for I/O, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICKS


def broker_pid(port: int = 5672) -> int | None:
    """The pid of the ``beam.smp`` listening on ``port`` here (others may run, e.g. in
    containers), else ``None``."""
    inodes = _listening_inodes(port)
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "beam.smp" and _holds(comm.parent, inodes):
                return int(comm.parent.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
                    found.add(fields[9])
    return found


def _holds(process: Path, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in (process / "fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return True
    return False


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU seconds of each watched process and of the machine, at one instant."""

    at: float
    cpu: tuple[float, ...]
    machine: float


@dataclass(frozen=True, slots=True)
class Usage:
    """What happened between two samples."""

    seconds: float
    cpu: tuple[float, ...]  # CPU seconds per watched process
    other_cores: float  # cores busy with anything else, on average


class CpuMeter:
    """Samples the CPU time of ``pids`` (processes may come and go) and of the machine."""

    def __init__(self, pids: Sequence[int | None]) -> None:
        self.pids = list(pids)

    def sample(self) -> Sample:
        cpu = tuple(cpu_seconds(p) if p else 0.0 for p in self.pids)
        return Sample(time.monotonic(), cpu, machine_busy_seconds())

    @staticmethod
    def between(before: Sample, after: Sample) -> Usage:
        seconds = max(after.at - before.at, 1e-9)
        used = tuple(a - b for a, b in zip(after.cpu, before.cpu, strict=True))
        other = (after.machine - before.machine - sum(used)) / seconds
        return Usage(seconds, used, max(other, 0.0))


def loadavg() -> float:
    """The one-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def describe() -> dict[str, object]:
    """The machine and the versions that shape the figures."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PHYS_PAGES") * _PAGE / 2**30
    return {"cores": os.cpu_count(), "cpu": model, "memory_gib": round(memory, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "packages": _versions()}


def _versions() -> dict[str, str]:
    names = ("aiohttp", "aio-pika", "aiormq", "pamqp", "pydantic", "pydantic-core", "structlog",
             "faststream", "uvloop", "orjson")
    found = {}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found

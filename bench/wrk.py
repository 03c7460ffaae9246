"""Closed-loop load with ``wrk``: N keep-alive connections, each sending as soon as answered.

Every request is a different signed delivery, read by each wrk thread from its own file
(``bench.workload.write_wrk_files``), so the ingress publishes every one (a repeated event id
would be answered 200 without a publish). A thread that runs out of requests starts over,
and ``WrkResult.wrapped`` says so: the figures of such a run flatter the ingress.
"""

from __future__ import annotations

import json
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = """\
local files = {%(files)s}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("file", files[counter])
end
function init(args)
  requests, count, index, wrapped = {}, 0, 0, 0
  for line in io.lines(file) do
    local tab = line:find("\\t", 1, true)
    local headers = {["Content-Type"] = "application/json",
                     ["zenoti-webhook-signature"] = line:sub(1, tab - 1)}
    count = count + 1
    requests[count] = wrk.format("POST", "%(path)s", headers, line:sub(tab + 1))
  end
end
function request()
  index = index + 1
  if index > count then index, wrapped = 1, wrapped + 1 end
  return requests[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, '
    .. '"p99_us": %%d, "max_us": %%d, "bad_status": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """wrk's own figures of one run; latencies in microseconds."""

    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    bad_status: int
    socket_errors: int
    cpu_seconds: float = 0.0  # what wrk itself used
    wrapped: bool = False

    @property
    def per_second(self) -> float:
        return self.requests / max(self.duration_us / 1e6, 1e-9)


def write_script(directory: Path, files: list[Path], path: str) -> Path:
    """The Lua script sending the requests in ``files`` (one per thread) to ``path``."""
    script = directory / "deliveries.lua"
    names = ", ".join(json.dumps(str(f)) for f in files)
    script.write_text(_SCRIPT % {"files": names, "path": path})
    return script


def run(url: str, script: Path, *, threads: int, connections: int, seconds: float,
        available: int) -> WrkResult:
    """Drive ``url`` for ``seconds``; ``available`` is how many distinct requests exist."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(int(seconds), 1)}s",
               "--timeout", "10s", "-s", str(script), url]
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            figures = json.loads(line.removeprefix("RESULT "))
            return WrkResult(**figures, cpu_seconds=_children_cpu() - before,
                             wrapped=figures["requests"] > available)
    raise RuntimeError(f"wrk printed no RESULT line:\n{done.stdout}\n{done.stderr}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

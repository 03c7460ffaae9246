"""How runs are repeated: the options every scenario takes, and one retry for a disturbed run.

Other work shares this machine, so each attempt first waits (at most ``QUIET_WAIT_S``) for the
machine to be nearly idle, and a run records ``other_cores`` (what else kept the CPUs busy
meanwhile). A run disturbed beyond ``Options.noise``, or broken by the broker going away (other
people's fault tests restart it), is run once more; the quieter attempt is kept and the other
is counted in ``discarded``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aio_pika

from bench.machine import machine_busy_seconds

Run = dict[str, float]
QUIET_WAIT_S = 20.0
QUIET_CORES = 0.4  # busy cores (the broker's idle work included) that count as quiet


@dataclass
class Options:
    """What the command line chose; ``quick`` shortens everything to a smoke run."""

    runs: int = 3
    quick: bool = False
    noise: float = 0.6  # cores busy with other work that void a run
    loop: str = "uvloop"  # every measured process, ours and the baselines
    discarded: list[Run] = field(default_factory=list)

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full


_BROKEN = (OSError, ConnectionError, RuntimeError, aio_pika.exceptions.AMQPError)


def attempt(label: str, run: Callable[[], Run], options: Options) -> Run:
    """``run()``, once more if it failed or was disturbed; the quieter result."""
    tries: list[Run] = []
    for number in range(2):
        wait_for_quiet()
        try:
            tries.append(run())
        except _BROKEN as exc:
            print(f"  {label}: run failed ({type(exc).__name__}: {str(exc)[:200]}); "
                  "waiting for the broker, then once more", file=sys.stderr)
            time.sleep(10)
            if number:
                raise
            continue
        print(f"  {label}: {_line(tries[-1])}", flush=True)
        if tries[-1].get("other_cores", 0.0) <= options.noise:
            break
    best = min(tries, key=lambda r: r.get("other_cores", 0.0))
    options.discarded.extend(r for r in tries if r is not best)
    return best


def wait_for_quiet() -> None:
    """Return once the machine was nearly idle for half a second, or after ``QUIET_WAIT_S``."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline:
        before = machine_busy_seconds()
        time.sleep(0.5)
        if (machine_busy_seconds() - before) / 0.5 < QUIET_CORES:
            return


def _line(run: Run) -> str:
    return "  ".join(f"{k} {v:.3g}" for k, v in run.items())

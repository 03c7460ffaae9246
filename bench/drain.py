"""Measuring workers as they drain a prefilled work queue.

The queue's ready count is polled (a passive declare every ``interval`` s on one channel);
the rate is taken between the moments it fell below ``high`` and ``low`` fractions of the
prefill, so start-up and the last prefetched messages are left out. CPU seconds of the workers
and the broker, and the workers' resident memory, are read at those same two moments.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aio_pika

from bench.broker import URL
from bench.machine import CpuMeter, Sample, broker_pid, rss_mib
from bench.workload import WORK_QUEUE


@dataclass
class Drained:
    """What one drain showed; ``per_second`` is events acked per second in the window."""

    events: int
    seconds: float
    cpu_seconds: float  # all workers together
    broker_cpu_seconds: float
    other_cores: float
    rss_mib: list[float]  # per worker, at the end of the window
    trace: list[tuple[float, int, float]] = field(default_factory=list)  # (t, depth, rss)

    @property
    def per_second(self) -> float:
        return self.events / max(self.seconds, 1e-9)

    def figures(self) -> dict[str, float]:
        count = max(self.events, 1)
        return {"events_per_s": self.per_second, "cpu_ms": self.cpu_seconds * 1000 / count,
                "broker_cpu_ms": self.broker_cpu_seconds * 1000 / count,
                "rss_mib": max(self.rss_mib, default=0.0), "other_cores": self.other_cores}


async def drain(pids: Sequence[int], prefilled: int, *, timeout: float, high: float = 0.9,
                low: float = 0.1, interval: float = 0.1,
                on_poll: Callable[[float, int], None] | None = None) -> Drained:
    """Watch ``pids`` drain the work queue from ``high`` to ``low`` of ``prefilled``."""
    meter = CpuMeter([*pids, broker_pid()])
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        start: tuple[Sample, int] | None = None
        trace: list[tuple[float, int, float]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            depth = (await channel.declare_queue(WORK_QUEUE, passive=True)).declaration_result
            ready, sample = depth.message_count or 0, meter.sample()
            trace.append((sample.at, ready, sum(rss_mib(p) for p in pids)))
            if on_poll is not None:
                on_poll(sample.at, ready)
            if start is None and ready <= prefilled * high:
                start = (sample, ready)
            if start is not None and ready <= prefilled * low:
                return _result(meter, start, (sample, ready), pids, trace)
            await asyncio.sleep(interval)
    raise RuntimeError(f"the queue did not drain within {timeout:.0f} s (ready: {ready})")


def _result(meter: CpuMeter, start: tuple[Sample, int], end: tuple[Sample, int],
            pids: Sequence[int], trace: list[tuple[float, int, float]]) -> Drained:
    usage = meter.between(start[0], end[0])
    return Drained(events=start[1] - end[1], seconds=usage.seconds,
                   cpu_seconds=sum(usage.cpu[:-1]), broker_cpu_seconds=usage.cpu[-1],
                   other_cores=usage.other_cores, rss_mib=[rss_mib(p) for p in pids],
                   trace=trace)

"""What the ingress and the worker showed while a fault test ran: sampled a few times a second.

``Watch`` polls the ingress's ``/metrics`` (its publisher connected or not, deliveries waiting
in its spool) and the worker's ``/readyz``, and turns the samples into the figures of the
cluster fault table: seconds the ingress had no broker (it answered from its spool then),
seconds its spool held deliveries, seconds the worker was not consuming, and how long after
a fault began everything was well again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.faults.harness import FaultStack

PERIOD = 0.25


@dataclass(frozen=True)
class Sample:
    """One look at the processes, at ``at`` (``time.monotonic``)."""

    at: float
    connected: bool  # the ingress's publisher holds a confirm channel
    spooled: int  # deliveries in the ingress's spool
    worker_ready: bool

    @property
    def well(self) -> bool:
        return self.connected and self.spooled == 0 and self.worker_ready


@dataclass
class Watch:
    """Samples ``stack``'s ingress and worker every ``period`` s from ``start`` to ``stop``."""

    stack: FaultStack
    period: float = PERIOD
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def seconds(self, bad: Callable[[Sample], bool]) -> float:
        """Seconds during which ``bad`` held (each sample counts until the next)."""
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return round(sum(b.at - a.at for a, b in pairs if bad(a)), 2)

    def recovered_after(self, since: float, until: float = float("inf")) -> float | None:
        """Seconds from ``since`` (a fault began) until everything was well again for good,
        looking at the samples before ``until`` (the next fault); None if it was not well at
        the last of them."""
        window = [s for s in self.samples if since <= s.at < until]
        if not window or not window[-1].well:
            return None
        last_bad = next((s for s in reversed(window) if not s.well), None)
        return 0.0 if last_bad is None else round(last_bad.at + self.period - since, 2)

    def figures(self, since: float) -> dict[str, float | None]:
        """The table's availability figures, a fault having begun at ``since``."""
        return {"ingress_disconnected_s": self.seconds(lambda s: not s.connected),
                "spooling_s": self.seconds(lambda s: s.spooled > 0),
                "worker_unready_s": self.seconds(lambda s: not s.worker_ready),
                "max_spooled": max((s.spooled for s in self.samples), default=0),
                "recovered_after_s": self.recovered_after(since)}

    async def _run(self) -> None:
        metrics = f"http://127.0.0.1:{self.stack.ingress_port}/metrics"
        ready = f"http://127.0.0.1:{self.stack.worker_port}/readyz"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                at = time.monotonic()
                connected, spooled = await _ingress(client, metrics)
                worker_ready = await _answers(client, ready)
                self.samples.append(Sample(at, connected, spooled, worker_ready))
                await asyncio.sleep(max(0.0, self.period - (time.monotonic() - at)))


async def _ingress(client: httpx.AsyncClient, url: str) -> tuple[bool, int]:
    """The ingress's publisher connected, and its spool's entries; (False, 0) unanswered."""
    try:
        text = (await client.get(url)).text
    except httpx.HTTPError:
        return False, 0
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line.startswith(("zenoti_events_broker_connected ",
                                      "zenoti_events_spool_entries ")))
    return (float(values.get("zenoti_events_broker_connected", 0)) == 1,
            int(float(values.get("zenoti_events_spool_entries", 0))))


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False

"""Zenoti's side of webhook delivery, simulated: signed POSTs to an ingress, with resends.

``run_simulator`` sends ``count`` deliveries about the sandbox organisation of ``seed``
(``zenoti-events simulate``; with ``day``, the realistic day of ``processor.dev.sandbox.day``),
paced at ``rate`` per second with at most ``concurrency`` in flight. A delivery answered
non-2xx, or not at all, is sent again after a backoff, at most ``max_resends`` times (Zenoti
retries too, REFERENCE 1.4). A run is bounded: about
``count / rate`` seconds plus, per delivery, ``max_resends + 1`` timeouts and backoffs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.sandbox.day import EVEN_MIX, parse_mix, plan_day
from processor.dev.sandbox.organisation import Organisation
from processor.errors import ConfigError

CONNECTION_ERROR = "error"  # the ``by_status`` key of attempts that got no answer


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Where to send and how. ``rate <= 0`` sends as fast as ``concurrency`` allows.

    ``seed``, ``guests`` and ``centers`` must match the sandbox's for the deliveries to
    name records it serves.
    """

    url: str
    secret: str | None = None
    count: int = 100
    rate: float = 20.0
    seed: int = 1
    unknown_ratio: float = 0.05
    concurrency: int = 16
    max_resends: int = 5
    guests: int = 300
    centers: int = 3
    day: bool = False  # the realistic day (most guests once, bursts) instead of uniform draws
    mix: str = ""  # with ``day``: shares of kinds, e.g. "freeze=0.4,package=0.6"; "": even
    timeout: float = 10.0  # Zenoti gives up on a receiver after 10 s
    backoff: float = 0.5  # before the first resend; doubles per resend, up to max_backoff
    max_backoff: float = 5.0

    def check(self) -> None:
        """Raise ``ConfigError`` naming every out-of-range field, at once."""
        rules = (
            (self.url.startswith(("http://", "https://")), "url must be an http(s) URL"),
            (self.count >= 0, "count must be >= 0"),
            (self.concurrency >= 1, "concurrency must be >= 1"),
            (self.max_resends >= 0, "max_resends must be >= 0"),
            (0.0 <= self.unknown_ratio <= 1.0, "unknown_ratio must be within [0, 1]"),
            (self.timeout > 0, "timeout must be > 0"),
            (0 <= self.backoff <= self.max_backoff, "need 0 <= backoff <= max_backoff"),
        )
        problems = [message for ok, message in rules if not ok]
        if self.mix:
            try:
                parse_mix(self.mix)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("invalid simulator config: " + "; ".join(problems))


@dataclass
class SimulatorReport:
    """What happened. ``sent`` counts deliveries (not attempts), ``accepted_2xx`` those
    answered 2xx in the end; ``by_status`` counts every attempt by status code (as a string)
    or ``"error"`` when no answer came; ``resends`` counts attempts after the first."""

    sent: int = 0
    accepted_2xx: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    resends: int = 0
    seconds: float = 0.0
    accepted_ids: list[str] = field(default_factory=list)  # event ids answered 2xx
    failed_ids: list[str] = field(default_factory=list)  # event ids never answered 2xx

    @property
    def failed(self) -> int:
        """Deliveries never answered 2xx, even after every resend."""
        return self.sent - self.accepted_2xx

    def as_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "accepted_2xx": self.accepted_2xx, "failed": self.failed,
                "by_status": dict(sorted(self.by_status.items())), "resends": self.resends,
                "seconds": round(self.seconds, 3)}


async def run_simulator(
    config: SimulatorConfig,
    *,
    deliveries: Sequence[Delivery] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    report: SimulatorReport | None = None,
) -> SimulatorReport:
    """Send ``deliveries`` (default: those the config describes) and report.

    ``transport`` replaces the network, e.g. with ``httpx.MockTransport`` in tests.
    ``report``, when given, is filled in as answers come and added to (runs can share one),
    so a caller that cancels the run still knows which deliveries were accepted.
    """
    config.check()
    if deliveries is None:
        deliveries = _deliveries(config)
    limits = httpx.Limits(max_connections=config.concurrency,
                          max_keepalive_connections=config.concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=config.timeout, limits=limits,
                                 transport=transport) as client:
        report = await _Sender(client, config, report or SimulatorReport()).send_all(deliveries)
    report.seconds += time.monotonic() - started
    return report


def _deliveries(config: SimulatorConfig) -> list[Delivery]:
    org = Organisation.generate(config.seed, guests=config.guests, centers=config.centers)
    if config.day:
        mix = parse_mix(config.mix) if config.mix else EVEN_MIX
        return plan_day(org, config.count, config.seed, mix).deliveries
    return build_deliveries(org, config.count, config.seed, config.unknown_ratio)


class _Sender:
    """Paces deliveries, bounds those in flight, resends, and counts."""

    def __init__(self, client: httpx.AsyncClient, config: SimulatorConfig,
                 report: SimulatorReport) -> None:
        self.client, self.config, self.report = client, config, report
        self._slots = asyncio.Semaphore(config.concurrency)

    async def send_all(self, deliveries: Sequence[Delivery]) -> SimulatorReport:
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for index, delivery in enumerate(deliveries):
                await self._pace(started, index)
                await self._slots.acquire()  # released by the delivery's task
                self.report.sent += 1
                group.create_task(self._deliver(delivery))
        return self.report

    async def _pace(self, started: float, index: int) -> None:
        if self.config.rate > 0:
            delay = started + index / self.config.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _deliver(self, delivery: Delivery) -> None:
        """Attempt until a 2xx or the resends run out; the slot is free during backoffs."""
        holding = True
        try:
            for attempt in range(self.config.max_resends + 1):
                if attempt:
                    self.report.resends += 1
                    self._slots.release()
                    holding = False
                    await asyncio.sleep(self._backoff(attempt))
                    await self._slots.acquire()
                    holding = True
                if await self._attempt(delivery):
                    self.report.accepted_2xx += 1
                    self.report.accepted_ids.append(delivery.event_id)
                    return
            self.report.failed_ids.append(delivery.event_id)
        finally:
            if holding:
                self._slots.release()

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1)))

    async def _attempt(self, delivery: Delivery) -> bool:
        """One POST; True when it was answered 2xx."""
        try:
            response = await self.client.post(self.config.url, content=delivery.body,
                                              headers=delivery.headers(self.config.secret))
        except httpx.TransportError:  # refused, reset, timed out: Zenoti would resend
            self._count(CONNECTION_ERROR)
            return False
        self._count(str(response.status_code))
        return response.is_success

    def _count(self, status: str) -> None:
        self.report.by_status[status] = self.report.by_status.get(status, 0) + 1

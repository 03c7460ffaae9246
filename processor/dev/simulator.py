"""Zenoti's side of webhook delivery, simulated: signed POSTs to an ingress, with resends.

``run_simulator`` sends ``count`` deliveries about the sandbox organisation of ``seed``
(``zenoti-events simulate``; with ``day``, the realistic day of ``processor.dev.sandbox.day``),
paced at ``rate`` per second with at most ``concurrency`` in flight. A delivery answered
non-2xx, or not at all within ``timeout``, is sent again after a backoff, at most
``max_resends`` times; ``switch_off_after`` failed attempts in a row switch the webhook off:
nothing more is sent (``SimulatorConfig.zenoti()``: Zenoti's policy, REFERENCE 1.4). A run is
bounded: about ``count / rate`` seconds plus, per delivery, ``max_resends + 1`` timeouts and
backoffs; a switch-off ends it within one ``timeout``.
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
from processor.dev.zenoti_sender import Switch, backoff, latency_summary, zenoti_policy
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
    switch_off_after: int | None = None  # consecutive failed attempts; None: never switched off

    @classmethod
    def zenoti(cls, url: str, time_factor: float = 1.0, **fields: Any) -> SimulatorConfig:
        """Zenoti's retry policy (5 attempts, 30 s..10 min backoff, 10 s timeout, switch-off
        after 20 failures), its durations divided by ``time_factor``; ``fields`` set the rest
        and win over the policy. Raises ``ConfigError`` for a factor <= 0."""
        return cls(**{"url": url, **zenoti_policy(time_factor), **fields})

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
            (self.switch_off_after is None or self.switch_off_after >= 1,
             "switch_off_after must be >= 1 or None"),
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
    """What happened. ``sent`` counts deliveries attempted at least once (not attempts),
    ``accepted_2xx`` those answered 2xx in the end, ``given_up`` those that used every attempt
    without a 2xx; ``not_sent`` those whose next attempt never came because the webhook was
    switched off (never attempted, or waiting for a resend). So every delivery of a run is in
    exactly one of ``accepted_2xx``, ``given_up`` and ``not_sent``. ``by_status`` counts every
    attempt by status code (as a string) or ``"error"`` when no answer came within the timeout;
    ``resends`` counts attempts after the first; ``latencies_2xx`` holds the seconds each attempt
    answered 2xx took."""

    sent: int = 0
    accepted_2xx: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    resends: int = 0
    seconds: float = 0.0
    accepted_ids: list[str] = field(default_factory=list)  # event ids answered 2xx
    failed_ids: list[str] = field(default_factory=list)  # event ids sent, never answered 2xx
    given_up: int = 0
    not_sent: int = 0
    switched_off: bool = False
    switched_off_after_seconds: float | None = None  # from the start of the run that did it
    latencies_2xx: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Deliveries sent but never answered 2xx: given up, or their resends cut short."""
        return self.sent - self.accepted_2xx

    def as_json(self) -> dict[str, Any]:
        off_after = self.switched_off_after_seconds
        return {"sent": self.sent, "accepted_2xx": self.accepted_2xx, "failed": self.failed,
                "given_up": self.given_up, "not_sent": self.not_sent,
                "by_status": dict(sorted(self.by_status.items())), "resends": self.resends,
                "seconds": round(self.seconds, 3), "switched_off": self.switched_off,
                "switched_off_after_seconds": None if off_after is None else round(off_after, 3),
                "latency_2xx": latency_summary(self.latencies_2xx)}


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
    """Paces deliveries, bounds those in flight, resends, counts, and switches off."""

    def __init__(self, client: httpx.AsyncClient, config: SimulatorConfig,
                 report: SimulatorReport) -> None:
        self.client, self.config, self.report = client, config, report
        self._slots = asyncio.Semaphore(config.concurrency)
        self._switch = Switch(config.switch_off_after)

    async def send_all(self, deliveries: Sequence[Delivery]) -> SimulatorReport:
        """Start every delivery in turn until the webhook is switched off; count the rest."""
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for index, delivery in enumerate(deliveries):
                await self._pace(started, index)
                await self._slots.acquire()  # released by the delivery's task
                if self._switch.off:
                    self._slots.release()
                    self.report.not_sent += len(deliveries) - index
                    break
                group.create_task(self._deliver(delivery))
        return self.report

    async def _pace(self, started: float, index: int) -> None:
        if self.config.rate > 0:
            delay = started + index / self.config.rate - time.monotonic()
            if delay > 0:
                await self._switch.wait(delay)

    async def _deliver(self, delivery: Delivery) -> None:
        """Attempt until a 2xx, the resends run out, or a switch-off.

        Holds the slot ``send_all`` took for the first attempt only and one per resend: none
        during backoffs, so a switch-off ends a backoff at once.
        """
        try:
            if self._switch.off:  # switched off since send_all looked
                self.report.not_sent += 1
                return
            self.report.sent += 1
            ok = await self._attempt(delivery)
        finally:
            self._slots.release()
        attempts = 1
        while not ok and attempts <= self.config.max_resends:
            if await self._switch.wait(self._backoff(attempts)):
                break
            async with self._slots:
                if self._switch.off:
                    break
                self.report.resends += 1
                ok = await self._attempt(delivery)
            attempts += 1
        self._settle(delivery, ok, exhausted=attempts > self.config.max_resends)

    def _settle(self, delivery: Delivery, ok: bool, exhausted: bool) -> None:
        """Count a sent delivery's end: accepted, given up, or its resends cut off."""
        if ok:
            self.report.accepted_2xx += 1
            self.report.accepted_ids.append(delivery.event_id)
            return
        self.report.failed_ids.append(delivery.event_id)
        if exhausted:
            self.report.given_up += 1
        else:
            self.report.not_sent += 1

    def _backoff(self, resend: int) -> float:
        return backoff(resend, self.config.backoff, self.config.max_backoff)

    async def _attempt(self, delivery: Delivery) -> bool:
        """One POST, given ``timeout`` in all for its answer; True when it was answered 2xx."""
        started = time.monotonic()
        try:
            # httpx's timeout bounds each phase (connect, each read); Zenoti's bounds the whole.
            async with asyncio.timeout(self.config.timeout):
                response = await self.client.post(self.config.url, content=delivery.body,
                                                  headers=delivery.headers(self.config.secret))
        except (httpx.TransportError, TimeoutError):  # refused, reset, too slow: a failure
            return self._count(CONNECTION_ERROR, ok=False)
        if response.is_success:
            self.report.latencies_2xx.append(time.monotonic() - started)
        return self._count(str(response.status_code), ok=response.is_success)

    def _count(self, status: str, ok: bool) -> bool:
        """Count one attempt's outcome, by status and on the switch; returns ``ok``."""
        self.report.by_status[status] = self.report.by_status.get(status, 0) + 1
        if self._switch.record(ok):
            self.report.switched_off = True
            self.report.switched_off_after_seconds = self._switch.off_after
        return ok

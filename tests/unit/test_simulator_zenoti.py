"""The simulator with Zenoti's retry policy: timeouts, backoffs, giving up, switching off."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.sandbox import Organisation
from processor.dev.sandbox.cli import add_simulate_parser, simulator_config
from processor.dev.simulator import SimulatorConfig, SimulatorReport, run_simulator
from processor.dev.zenoti_sender import Switch, backoff, zenoti_policy
from processor.errors import ConfigError

URL = "http://ingress.invalid/webhooks/zenoti"
DELIVERIES = build_deliveries(Organisation.generate(5, guests=30), 60, seed=1, unknown_ratio=0.0)


@dataclass
class Ingress:
    """A fake ingress: ``answer(n)`` is the status of the n-th request (1-based), overall;
    ``delay(n)`` seconds before it answers."""

    answer: Callable[[int], int]
    delay: Callable[[int], float] = lambda n: 0.0
    times: list[float] = field(default_factory=list)  # when each request came, monotonic

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        n = len(self.times)
        await asyncio.sleep(self.delay(n))
        return httpx.Response(self.answer(n))


async def _run(ingress: Ingress, deliveries: Sequence[Delivery], time_factor: float,
               **fields: Any) -> SimulatorReport:
    config = SimulatorConfig.zenoti(URL, time_factor, **({"rate": 0, "concurrency": 1} | fields))
    return await run_simulator(config, deliveries=deliveries,
                               transport=httpx.MockTransport(ingress.handle))


def _always(status: int) -> Callable[[int], int]:
    return lambda n: status


def test_the_preset_is_zenotis_policy_compressed_by_the_time_factor() -> None:
    assert zenoti_policy() == {"max_resends": 4, "backoff": 30.0, "max_backoff": 600.0,
                               "timeout": 10.0, "switch_off_after": 20}
    assert zenoti_policy(10) == {"max_resends": 4, "backoff": 3.0, "max_backoff": 60.0,
                                 "timeout": 1.0, "switch_off_after": 20}
    with pytest.raises(ConfigError, match="time_factor"):
        zenoti_policy(0)
    config = SimulatorConfig.zenoti(URL, 10, timeout=2.0, count=7)
    assert (config.timeout, config.backoff, config.count) == (2.0, 3.0, 7)
    with pytest.raises(ConfigError, match="switch_off_after"):
        SimulatorConfig(url=URL, switch_off_after=0).check()


def test_the_backoffs_are_30_60_120_240_seconds_capped_at_10_minutes() -> None:
    for factor in (1.0, 10.0):
        policy = zenoti_policy(factor)
        delays = [backoff(n, policy["backoff"], policy["max_backoff"]) for n in range(1, 7)]
        assert delays == [d / factor for d in (30, 60, 120, 240, 480, 600)]


async def test_a_delivery_failing_five_attempts_is_given_up_after_the_backoffs() -> None:
    ingress, factor = Ingress(_always(500)), 1000.0
    report = await _run(ingress, DELIVERIES[:1], factor)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ingress.times)]
    expected = [d / factor for d in (30, 60, 120, 240)]
    for gap, want in zip(gaps, expected, strict=True):
        assert want - 0.001 <= gap < want + 0.25  # the next backoff is twice as long
    assert (report.sent, report.resends, report.given_up, report.not_sent) == (1, 4, 1, 0)
    assert report.failed_ids == [DELIVERIES[0].event_id]
    assert not report.switched_off


def test_a_2xx_resets_the_count_of_failures_in_a_row() -> None:
    switch = Switch(20)
    for ok in [False] * 19 + [True] + [False] * 19:
        assert not switch.record(ok)
    assert (switch.off, switch.failures) == (False, 19)
    assert switch.record(False)
    assert switch.off and switch.off_after is not None
    assert not switch.record(True) and switch.off  # off for good
    never = Switch(None)
    assert not any(never.record(False) for _ in range(100))


async def test_a_2xx_every_20th_attempt_keeps_the_webhook_on() -> None:
    ingress = Ingress(lambda n: 202 if n % 20 == 0 else 500)
    report = await _run(ingress, DELIVERIES[:45], 10_000, max_resends=0, timeout=1.0)
    assert not report.switched_off
    assert (report.sent, report.not_sent, report.given_up) == (45, 0, 43)
    assert report.by_status == {"202": 2, "500": 43}


async def test_20_failures_in_a_row_switch_off_and_nothing_more_is_sent() -> None:
    ingress = Ingress(_always(503))
    # first backoff 3 s (time factor 10): the 20th failure comes long before any resend
    report = await _run(ingress, DELIVERIES[:30], 10)
    assert len(ingress.times) == 20 and report.by_status == {"503": 20}
    assert report.switched_off and report.switched_off_after_seconds is not None
    # 20 sent once, their resends abandoned; 10 never sent
    assert (report.sent, report.failed, report.given_up, report.not_sent) == (20, 20, 0, 30)
    assert report.resends == 0


async def test_every_delivery_is_accepted_given_up_or_not_sent() -> None:
    ingress = Ingress(lambda n: 202 if n <= 10 else 500)
    report = await _run(ingress, DELIVERIES[:40], 10_000, timeout=1.0, concurrency=4)
    assert report.switched_off and report.accepted_2xx == 10
    assert report.accepted_2xx + report.given_up + report.not_sent == 40
    assert 20 <= report.by_status["500"] <= 20 + 3  # at most the other slots' attempts in flight
    assert report.sent == report.accepted_2xx + report.failed


async def test_an_answer_later_than_the_timeout_is_a_failed_attempt() -> None:
    ingress = Ingress(_always(202), delay=lambda n: 3.0 if n == 1 else 0.0)
    report = await _run(ingress, DELIVERIES[:1], 1000, timeout=0.5)  # first backoff 30 ms
    assert report.by_status == {"error": 1, "202": 1}
    assert (report.accepted_2xx, report.resends, report.given_up) == (1, 1, 0)
    assert len(report.latencies_2xx) == 1 and report.latencies_2xx[0] < 0.5


async def test_the_report_json_says_what_zenoti_did() -> None:
    report = await _run(Ingress(lambda n: 202 if n <= 2 else 500), DELIVERIES[:25], 100)
    figures = json.loads(json.dumps(report.as_json()))
    assert {k: figures[k] for k in ("sent", "accepted_2xx", "failed", "given_up", "not_sent",
                                    "resends", "switched_off", "by_status")} == {
        "sent": 22, "accepted_2xx": 2, "failed": 20, "given_up": 0, "not_sent": 23,
        "resends": 0, "switched_off": True, "by_status": {"202": 2, "500": 20}}
    assert 0 <= figures["switched_off_after_seconds"] <= figures["seconds"]
    assert set(figures["latency_2xx"]) == {"p50", "p99", "max"}
    assert SimulatorReport().as_json()["latency_2xx"] is None


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_simulate_parser(parser.add_subparsers())
    return parser.parse_args(["simulate", *argv])


def test_the_cli_picks_zenotis_policy_with_a_time_factor() -> None:
    config = simulator_config(_parse("--zenoti-retries", "--time-factor", "10", "--count", "3"))
    assert (config.max_resends, config.backoff, config.max_backoff) == (4, 3.0, 60.0)
    assert (config.timeout, config.switch_off_after, config.count) == (1.0, 20, 3)
    plain = simulator_config(_parse("--max-resends", "2"))
    assert (plain.max_resends, plain.switch_off_after) == (2, None)
    assert plain == SimulatorConfig(url=plain.url, max_resends=2)
    with pytest.raises(ConfigError, match="--zenoti-retries"):
        simulator_config(_parse("--time-factor", "10"))

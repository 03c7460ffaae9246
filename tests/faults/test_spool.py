"""The ingress's spool under broker faults (issue 12), on real processes and a private node;
each test prints its figures (see the end of the pytest output) and asserts the invariant:
nothing answered 2xx is lost.

What the spool is for: Zenoti switches a webhook off after 20 failed attempts in a row (each
given 10 s), and a broker away for a minute at 50 deliveries/s makes those in well under a
second. With a spool the ingress answers 2xx from disk instead, and forwards later.

Sizes (about 4 minutes in all, most of it the outage and the alarm themselves):

- a 30 s broker outage under 50 deliveries/s for 40 s (2,000 deliveries), with Zenoti's
  sender compressed tenfold (1 s timeout, 3 s..60 s backoff, switch-off after 20 failures)
  and a 0.5 s confirm timeout: with a spool the webhook stays on and all 2,000 are 2xx;
  without one (the contrast) it is switched off within the outage's first second or two;
- a 60 s memory alarm under 50 deliveries/s for 68 s (3,400 deliveries), Zenoti's sender at
  real time (10 s timeout) and the default 5 s confirm timeout: every attempt answered 2xx
  within 10 s;
- kill -9 of the ingress while it spools 1,000 deliveries (100/s, broker away), a new one on
  the same spool directory, then the broker back;
- a 1 MiB spool (the minimum) and 1,500 deliveries with the broker away: about 890 fit, the
  rest are answered 503 ``spool_full`` with ``Retry-After`` until the broker is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.launcher import answers, fetch
from processor.dev.sandbox.organisation import Organisation
from processor.dev.simulator import (
    CONNECTION_ERROR,
    SimulatorConfig,
    SimulatorReport,
    run_simulator,
)
from processor.dev.stack import readyz
from tests.conftest import Broker
from tests.faults.harness import RESULTS, FaultStack, Figures, account, reset_all, settle
from tests.integration.processes import SECRET
from tests.rabbit import PrivateNode

pytestmark = [pytest.mark.integration, pytest.mark.fault]

RATE = 50.0  # deliveries per second, as the load
MIN_SPOOL = 1024 * 1024  # ZENOTI_EVENTS_SPOOL_MAX_BYTES's minimum


@pytest.fixture
async def node(private_broker: Broker) -> PrivateNode:
    """The private node, its test queues deleted and the outcome queue made."""
    assert private_broker.node is not None
    await reset_all(private_broker.url)
    return private_broker.node


def start_stack(node: PrivateNode, stacks: list[FaultStack], spool: Path | None,
                **env: str) -> FaultStack:
    """Sandbox and ingress (with a spool in ``spool`` when given), not yet a worker."""
    spooling = {"ZENOTI_EVENTS_SPOOL_DIR": str(spool)} if spool is not None else {}
    stack = FaultStack(node.url, **spooling, **env)
    stacks.append(stack)
    stack.sandbox_unlimited()
    stack.ingress()
    return stack


def deliveries(count: int, seed: int) -> list[Delivery]:
    return build_deliveries(Organisation.generate(1), count, seed=seed, unknown_ratio=0.02)


def as_zenoti(stack: FaultStack, sent: list[Delivery], time_factor: float,
              **fields: Any) -> asyncio.Task[SimulatorReport]:
    """Zenoti's sender (its timeout, backoffs and switch-off, compressed by ``time_factor``)
    at ``RATE``."""
    config = SimulatorConfig.zenoti(stack.webhook_url, time_factor, secret=SECRET,
                                    count=len(sent), rate=RATE, **fields)
    return asyncio.create_task(run_simulator(config, deliveries=sent))


def with_retries(stack: FaultStack, sent: list[Delivery], report: SimulatorReport,
                 **fields: Any) -> asyncio.Task[SimulatorReport]:
    """A sender that never switches off and resends for about two minutes (not Zenoti's)."""
    options: dict[str, Any] = {"rate": 0.0, "concurrency": 32, "max_resends": 40,
                               "backoff": 0.5, "max_backoff": 3.0, **fields}
    config = SimulatorConfig(url=stack.webhook_url, secret=SECRET, count=len(sent), **options)
    return asyncio.create_task(run_simulator(config, deliveries=sent, report=report))


async def spool_metrics(stack: FaultStack) -> dict[str, float]:
    """The ingress's ``zenoti_events_spool_*`` samples, by name (counters end in _total)."""
    text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{stack.ingress_port}/metrics", 5.0)
    assert text is not None, "the ingress's /metrics did not answer"
    samples = (line.rsplit(" ", 1) for line in text.splitlines()
               if line.startswith("zenoti_events_spool_"))
    return {name: float(value) for name, value in samples}


async def answer_times(stack: FaultStack) -> dict[str, float]:
    """The ingress's own ``zenoti_events_answer_seconds``: ``le`` bound -> answers within it,
    and ``count``."""
    text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{stack.ingress_port}/metrics", 5.0)
    assert text is not None, "the ingress's /metrics did not answer"
    found = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith('zenoti_events_answer_seconds_bucket{le="'):
            found[name.split('"')[1]] = float(value)
        elif name == "zenoti_events_answer_seconds_count":
            found["count"] = float(value)
    return found


async def spooled(stack: FaultStack, figures: Figures, report: SimulatorReport,
                  during: dict[str, float]) -> dict[str, float]:
    """The spool's metrics at the end, its figures noted in ``figures``."""
    after = await spool_metrics(stack)
    figures.notes |= {"spooled": after["zenoti_events_spool_writes_total"],
                      "forwarded": after["zenoti_events_spool_forwards_total"],
                      "spool_entries_during": during["zenoti_events_spool_entries"],
                      "failed_attempts": failed_attempts(report)}
    return after


async def ready(stack: FaultStack) -> bool:
    return await asyncio.to_thread(answers, readyz(stack.ingress_port), 5.0)


async def record(node: PrivateNode, name: str, report: SimulatorReport, started: float,
                 **notes: object) -> Figures:
    """Wait until the workers are done, count, and keep the figures for the summary."""
    waited = await settle(node.url, report.accepted_2xx)
    figures = await account(node.url, name, report)
    latencies = report.latencies_2xx
    figures.notes = {
        "by_status": dict(sorted(report.by_status.items())), "resends": report.resends,
        "given_up": report.given_up, "not_sent": report.not_sent,
        "switched_off": report.switched_off,
        "switched_off_after_seconds": _rounded(report.switched_off_after_seconds),
        "max_latency_2xx": _rounded(max(latencies) if latencies else None),
        **notes, "settle_seconds": round(waited, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.append(figures)
    assert figures.lost == 0, figures
    return figures


def failed_attempts(report: SimulatorReport) -> int:
    """Attempts answered non-2xx or not in time."""
    return sum(n for status, n in report.by_status.items()
               if status == CONNECTION_ERROR or not status.startswith("2"))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


OUTAGE = 30.0  # Zenoti's 5 minutes of retrying, compressed tenfold
BEFORE_OUTAGE = 5.0


async def test_a_30_s_broker_outage_under_zenoti_s_sender_keeps_the_webhook_on_with_a_spool(
    node: PrivateNode, stacks: list[FaultStack], tmp_path: Path
) -> None:
    started = time.monotonic()
    stack = start_stack(node, stacks, tmp_path / "spool", ZENOTI_EVENTS_CONFIRM_TIMEOUT="0.5")
    await asyncio.to_thread(stack.worker)
    sent = deliveries(int(RATE * 40), seed=31)
    sending = as_zenoti(stack, sent, time_factor=10, concurrency=32)
    await asyncio.sleep(BEFORE_OUTAGE)

    away = time.monotonic()
    await asyncio.to_thread(node.stop_app)
    await asyncio.sleep(3.0)
    assert await ready(stack), "the ingress must stay ready while it spools"
    during = await spool_metrics(stack)
    assert during["zenoti_events_spool_entries"] > 0, during
    await asyncio.sleep(OUTAGE - (time.monotonic() - away))
    await asyncio.to_thread(node.start_app)
    outage = time.monotonic() - away

    report = await sending
    figures = await record(node, "broker away 30 s, Zenoti's sender /10, with a spool", report,
                           started, outage_seconds=round(outage, 1))
    after = await spooled(stack, figures, report, during)
    assert not report.switched_off, figures
    assert report.sent == figures.accepted_2xx == len(sent), figures
    assert after["zenoti_events_spool_entries"] == 0, after
    assert after["zenoti_events_spool_forwards_total"] == after[
        "zenoti_events_spool_writes_total"] > 0, after


async def test_without_a_spool_the_same_outage_gets_the_webhook_switched_off(
    node: PrivateNode, stacks: list[FaultStack]
) -> None:
    started = time.monotonic()
    stack = start_stack(node, stacks, None, ZENOTI_EVENTS_CONFIRM_TIMEOUT="0.5")
    await asyncio.to_thread(stack.worker)
    sent = deliveries(int(RATE * 40), seed=32)
    sending, sending_from = as_zenoti(stack, sent, time_factor=10, concurrency=32), time.monotonic()
    await asyncio.sleep(BEFORE_OUTAGE)

    away = time.monotonic() - sending_from
    await asyncio.to_thread(node.stop_app)
    # A switch-off ends the run: Zenoti sends nothing more until someone turns it back on.
    report = await asyncio.wait_for(sending, OUTAGE)
    await asyncio.to_thread(node.start_app)

    off_after = report.switched_off_after_seconds
    figures = await record(node, "broker away, Zenoti's sender /10, no spool", report, started,
                           outage_began_at=round(away, 1))
    figures.notes["failed_attempts"] = failed_attempts(report)
    assert report.switched_off, figures
    assert off_after is not None and away <= off_after < away + OUTAGE, figures
    assert report.not_sent > 0 and figures.accepted_2xx < len(sent), figures


ALARM = 60.0


async def test_a_60_s_memory_alarm_is_answered_2xx_within_zenoti_s_10_s_timeout(
    node: PrivateNode, stacks: list[FaultStack], tmp_path: Path
) -> None:
    """The default 5 s confirm timeout: the first deliveries in the alarm wait for it, then
    go to the spool, and every one after them goes straight to the spool. A publish that
    timed out may still be confirmed once the alarm clears; its spooled copy is forwarded
    as well: a duplicate with the same message id, counted. One resend at most (Zenoti's
    first comes 30 s later), so the run stays bounded: a 4xx/5xx fails the test, and so
    does more than one attempt the sender saw go unanswered (see below).

    The sender keeps 64 connections: those held by the first 5 s of the alarm make the
    others wait for one, whose time counts from when they are sent, as Zenoti's would. With
    some hundreds this in-process sender itself lags by seconds on a small loaded machine,
    and its latencies would count that (measured: the ingress answered within 5.05 s while
    the sender saw 10 s)."""
    started = time.monotonic()
    stack = start_stack(node, stacks, tmp_path / "spool")
    await asyncio.to_thread(stack.worker)
    sent = deliveries(int(RATE * (3 + ALARM + 5)), seed=33)
    sending = as_zenoti(stack, sent, time_factor=1, concurrency=64, max_resends=1)
    await asyncio.sleep(3.0)

    alarmed = time.monotonic()
    await asyncio.to_thread(node.alarm_memory)
    try:
        await asyncio.sleep(ALARM - (time.monotonic() - alarmed))
        during = await spool_metrics(stack)
    finally:
        await asyncio.to_thread(node.clear_alarms)
    alarm = time.monotonic() - alarmed

    report = await sending
    figures = await record(node, "memory alarm 60 s, Zenoti's sender at real time, spool",
                           report, started, alarm_seconds=round(alarm, 1))
    after = await spooled(stack, figures, report, during)
    assert not report.switched_off, figures
    assert report.sent == figures.accepted_2xx == len(sent), figures
    # Never a 4xx/5xx, and every answer within 10 s as the ingress timed it. An attempt
    # the sender saw unanswered in 10 s is allowed once in 3,400: this in-process sender,
    # beside a broker, an ingress and a worker on 2 cores, adds seconds of its own lag to
    # what it measures (one such attempt in one CI run of several).
    answers = await answer_times(stack)
    figures.notes |= {"ingress_answers": answers["count"],
                      "ingress_answers_over_8s": answers["count"] - answers["8.0"]}
    assert answers["10.0"] == answers["count"] >= len(sent), figures
    assert set(report.by_status) <= {"202", CONNECTION_ERROR}, figures
    assert report.by_status.get(CONNECTION_ERROR, 0) <= 1, figures
    assert max(report.latencies_2xx) < 10.0, figures
    assert during["zenoti_events_spool_entries"] > 0, during
    assert after["zenoti_events_spool_entries"] == 0, after


async def test_kill_9_of_the_ingress_while_it_spools_loses_nothing(
    node: PrivateNode, stacks: list[FaultStack], tmp_path: Path
) -> None:
    """The broker away, the ingress spools, is killed outright, and a new one on the same
    directory forwards what the first left once the broker is back. A delivery on disk but
    not yet answered when the kill came is sent again and spooled again: a duplicate."""
    started = time.monotonic()
    spool = tmp_path / "spool"
    stack = start_stack(node, stacks, spool)
    await asyncio.to_thread(stack.worker)
    first = next(child for child in stack.children if stack.name(child) == "ingress")
    await asyncio.to_thread(node.stop_app)

    sent = deliveries(1000, seed=34)
    sending = with_retries(stack, sent, SimulatorReport(), rate=100.0)
    await asyncio.sleep(4.0)
    before = await spool_metrics(stack)
    first.kill()  # SIGKILL: no drain, no close; the lock goes with the process
    await asyncio.to_thread(first.wait)

    await asyncio.to_thread(stack.ingress)  # the same port and spool directory
    recovered = await spool_metrics(stack)
    assert await ready(stack), "a new ingress with room in its spool is ready, broker or not"
    assert recovered["zenoti_events_spool_entries"] >= before["zenoti_events_spool_entries"] > 0
    await asyncio.sleep(3.0)
    await asyncio.to_thread(node.start_app)

    report = await sending
    figures = await record(node, "kill -9 of the ingress while spooling, restarted", report,
                           started)
    after = await spool_metrics(stack)
    # The new ingress wrote some of its own before it was first scraped: what it found on
    # disk is what it forwarded beyond what it wrote (its spool is empty at the end).
    found = (after["zenoti_events_spool_forwards_total"]
             - after["zenoti_events_spool_writes_total"])
    figures.notes |= {
        "spooled_before_kill_at_least": before["zenoti_events_spool_writes_total"],
        "recovered_at_restart": found,
        "spooled_after_restart": after["zenoti_events_spool_writes_total"],
        "forwarded_after_restart": after["zenoti_events_spool_forwards_total"],
    }
    assert report.sent == figures.accepted_2xx == len(sent), figures
    assert after["zenoti_events_spool_entries"] == 0, after
    assert found >= before["zenoti_events_spool_writes_total"], figures


async def test_a_full_spool_answers_503_spool_full_until_the_broker_is_back(
    node: PrivateNode, stacks: list[FaultStack], tmp_path: Path
) -> None:
    started = time.monotonic()
    stack = start_stack(node, stacks, tmp_path / "spool",
                        ZENOTI_EVENTS_SPOOL_MAX_BYTES=str(MIN_SPOOL))
    await asyncio.to_thread(stack.worker)
    await asyncio.to_thread(node.stop_app)

    sent, report = deliveries(1500, seed=35), SimulatorReport()
    sending = with_retries(stack, sent, report)
    deadline = time.monotonic() + 60
    while report.by_status.get("503", 0) == 0:
        assert time.monotonic() < deadline, report.by_status
        await asyncio.sleep(0.2)

    # Full: less room left than one delivery of the simulator's, so none of 64 KiB fits.
    probe = big_delivery(64 * 1024)
    answer = await asyncio.to_thread(
        httpx.post, stack.webhook_url, content=probe.body, headers=probe.headers(SECRET),
        timeout=10)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "spool_full", answer.text
    assert int(answer.headers["Retry-After"]) > 0
    full = await spool_metrics(stack)
    assert not await ready(stack), "neither a broker nor room on disk: not ready"

    await asyncio.sleep(5.0)  # the sender keeps resending, and keeps being told 503
    await asyncio.to_thread(node.start_app)
    report = await sending
    figures = await record(node, "1 MiB spool full, broker away, plain resends", report,
                           started)
    after = await spool_metrics(stack)
    figures.notes |= {"spool_bytes_when_full": full["zenoti_events_spool_bytes"],
                      "spool_entries_when_full": full["zenoti_events_spool_entries"],
                      "spooled": after["zenoti_events_spool_writes_total"],
                      "forwarded": after["zenoti_events_spool_forwards_total"]}
    assert report.sent == figures.accepted_2xx == len(sent), figures
    assert report.by_status["503"] > 0, figures
    assert after["zenoti_events_spool_entries"] == 0, after


def big_delivery(size: int) -> Delivery:
    key = f"echo-big-{size}"
    body = json.dumps({"event_id": key, "event_type": "Example.Echo",
                       "event_timestamp": "2026-11-21T10:00:00.1234567Z",
                       "data": {"text": "x" * size}}).encode()
    return Delivery(body, "Example.Echo", key)

"""Fault tests on real processes and the real broker; each prints its figures (see the end of
the pytest output) and asserts the invariant: nothing answered 2xx is lost. The test that
restarts the broker restarts a private node of its own, never the local broker."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from processor.dev.deliveries import Delivery, build_deliveries
from processor.dev.sandbox.organisation import Organisation
from processor.dev.simulator import SimulatorConfig, SimulatorReport, run_simulator
from tests.conftest import Broker
from tests.faults.harness import RESULTS, FaultStack, Figures, account, reset_all, settle
from tests.integration.processes import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@pytest.fixture
async def url(broker: Broker) -> str:
    await reset_all(broker.url)
    return broker.url


@pytest.fixture
async def private_url(private_broker: Broker) -> str:
    await reset_all(private_broker.url)
    return private_broker.url


def simulate(stack: FaultStack, deliveries: list[Delivery], **config: float) -> asyncio.Task[
    SimulatorReport
]:
    options: dict[str, Any] = {"rate": 0.0, "concurrency": 32, "max_resends": 30,
                               "backoff": 0.5, "max_backoff": 3.0, **config}
    settings = SimulatorConfig(url=stack.webhook_url, secret=SECRET, count=len(deliveries),
                               **options)
    return asyncio.create_task(run_simulator(settings, deliveries=deliveries))


async def finish(url: str, name: str, report: SimulatorReport, **notes: object) -> Figures:
    waited = await settle(url, report.accepted_2xx)
    figures = await account(url, name, report)
    figures.notes = {"settle_seconds": round(waited, 1), "by_status": report.by_status,
                     "resends": report.resends, **notes}
    RESULTS.append(figures)
    assert figures.lost == 0, figures
    assert figures.accepted_2xx == figures.sent, figures
    return figures


async def test_kill_9_of_workers_at_random_points_loses_nothing(
    url: str, stacks: list[FaultStack]
) -> None:
    stack = FaultStack(url)
    stacks.append(stack)
    stack.sandbox_unlimited()
    stack.ingress()
    deliveries = build_deliveries(Organisation.generate(1), 5000, seed=11, unknown_ratio=0.02)
    sending = simulate(stack, deliveries)
    rng, kills = random.Random(5), 0
    worker = await asyncio.to_thread(stack.worker)
    while kills < 5:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        worker.kill()  # SIGKILL: no drain, no nack; its unacked messages return to the queue
        worker.wait()
        kills += 1
        worker = await asyncio.to_thread(stack.worker)
    await finish(url, "kill -9 of the worker x5 during 5,000 events", await sending, kills=kills)


async def test_a_broker_restart_during_5000_deliveries_loses_nothing(
    private_url: str, private_broker: Broker, stacks: list[FaultStack]
) -> None:
    node, url = private_broker.node, private_url
    assert node is not None
    stack = FaultStack(url)
    stacks.append(stack)
    stack.sandbox_unlimited()
    stack.ingress()
    await asyncio.to_thread(stack.worker)
    deliveries = build_deliveries(Organisation.generate(1), 5000, seed=12, unknown_ratio=0.02)
    sending = simulate(stack, deliveries, rate=400.0)
    await asyncio.sleep(4.0)
    await asyncio.to_thread(node.stop_app)
    await asyncio.sleep(3.0)
    await asyncio.to_thread(node.start_app)
    report = await sending
    await finish(url, "RabbitMQ restarted during 5,000 deliveries", report)
    assert report.by_status.get("503", 0) + report.by_status.get("error", 0) > 0


async def test_a_failing_throttling_hanging_api_loses_nothing(
    url: str, stacks: list[FaultStack]
) -> None:
    stack = FaultStack(url, ZENOTI_EVENTS_ZENOTI_API_TIMEOUT="0.5")
    stacks.append(stack)
    stack.sandbox_unlimited("--error-rate", "0.3", "--throttle-rate", "0.2", "--timeout-rate",
                            "0.1", "--hang-seconds", "1", "--throttle-retry-after", "0.05")
    stack.ingress()
    await asyncio.to_thread(stack.worker)
    deliveries = build_deliveries(Organisation.generate(1), 1000, seed=13, unknown_ratio=0.02)
    report = await simulate(stack, deliveries)
    waited = await settle(url, report.accepted_2xx)
    stats = httpx.get(f"http://127.0.0.1:{stack.sandbox_port}/_sandbox/stats").json()
    figures = await account(url, "Zenoti API: 30% 5xx, 20% 429, 10% timeouts", report)
    figures.notes = {"settle_seconds": round(waited, 1), "api_calls": stats["calls"],
                     "api_faults": stats["faults"], "api_429": stats["throttled"]}
    RESULTS.append(figures)
    assert figures.lost == 0, figures


async def test_poison_payloads_are_parked_and_the_worker_keeps_serving(
    url: str, stacks: list[FaultStack]
) -> None:
    stack = FaultStack(url, ZENOTI_EVENTS_DELIVERY_LIMIT="3", ZENOTI_EVENTS_PREFETCH="4",
                       ZENOTI_EVENTS_RETRY='{"max_attempts": 4, "max_age_seconds": 600}')
    stacks.append(stack)
    stack.sandbox_unlimited()
    stack.ingress()
    texts = ["ok"] * 200 + ["poison"] * 5 + ["flaky"] * 5 + ["crash"] * 2
    random.Random(3).shuffle(texts)
    deliveries = [_echo(i, text) for i, text in enumerate(texts)]
    report = await simulate(stack, deliveries, concurrency=8)
    restarts = await _supervise(stack, report)
    figures = await account(url, "poison payloads among 212 events", report)
    figures.notes = {"worker_restarts": restarts}
    RESULTS.append(figures)
    assert figures.lost == 0, figures
    # A message that shared a prefetch window with a crashing one shares its deliveries, so it
    # may reach the delivery limit first: then it is parked for that reason, never lost.
    expected = {"poison": "invalid_payload", "flaky": "attempts_exhausted",
                "crash": "broker:delivery_limit"}
    for delivery in deliveries:
        text = delivery.event_id.rsplit("-", 1)[1]
        reasons = figures.reasons_of.get(delivery.event_id, set())
        if text == "ok":
            assert delivery.event_id in figures.enriched_keys or reasons == {
                "broker:delivery_limit"}, delivery.event_id
        else:
            assert reasons & {expected[text], "broker:delivery_limit"}, (delivery.event_id,
                                                                          reasons)


async def _supervise(stack: FaultStack, report: SimulatorReport, seconds: float = 120) -> int:
    """Restart the worker whenever it dies (as Kubernetes would) until all settled."""
    restarts = -1
    settling = asyncio.create_task(settle(stack.amqp_url, report.accepted_2xx, seconds))
    while not settling.done():
        restarts += 1
        worker = stack.worker(wait=False)
        while worker.poll() is None and not settling.done():
            await asyncio.sleep(0.1)
    await settling
    return restarts


def _echo(index: int, text: str) -> Delivery:
    key = f"echo-{index:04d}-{text}"
    body = json.dumps({"event_id": key, "event_type": "Example.Echo",
                       "event_timestamp": "2026-11-21T10:00:00.1234567Z",
                       "data": {"text": text}}).encode()
    return Delivery(body, "Example.Echo", key)

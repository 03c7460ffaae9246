"""The whole system on a 3-node RabbitMQ cluster (``tests/cluster.py``), real processes, while
the cluster loses a node; each test prints its figures (see the end of the pytest output) and
asserts the invariant: nothing answered 2xx is lost.

Every process is given ``AMQP_URL`` listing the three nodes, and connects to the first that
answers (``processor.broker.connect``). The ingress runs as deployed: with its spool
(``SPOOL_DIR``) and the default 5 s confirm timeout. The sender is Zenoti's, at real time
(10 s timeout, a resend 30 s later), at ``RATE`` deliveries a second.

Sizes (about 5 minutes in all on a 2-core machine, 30 s of it starting the cluster):

- the first node, made to hold every work queue's leader and holding every connection of
  ours, killed (SIGKILL) 8 s into 2,000 deliveries (40 s), started again 12 s later;
- a rolling upgrade (each node drained, stopped and started in turn, as the Cluster
  Operator does it; about 35 s) under 5,000 deliveries (100 s);
- that node, holding every leader and connection again, partitioned from its peers 8 s
  into 2,000 deliveries, for 15 s (it pauses: ``pause_minority``), then healed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from processor.broker import topology
from processor.dev.deliveries import build_deliveries
from processor.dev.sandbox.organisation import Organisation
from processor.dev.simulator import SimulatorConfig, SimulatorReport, run_simulator
from processor.settings import Settings
from processor.wiring import declare_topology
from tests.cluster import Cluster
from tests.conftest import missing
from tests.faults.availability import Watch
from tests.faults.harness import (
    FAST_TIERS,
    HANDLERS,
    RESULTS,
    FaultStack,
    Figures,
    account,
    prepare_outcome_queue,
    settle,
)
from tests.integration.processes import SECRET
from tests.rabbit import NodeError, find_scripts

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.long]

RATE = 50.0  # as the other fault tests: what this machine serves with room to spare
WORK = [topology.queue_name(h) for h in HANDLERS]


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Three nodes, joined; the work queues declared once, well before any fault (a quorum
    queue declared seconds before a SIGKILL may not come back on that node in 3.10)."""
    if find_scripts() is None:
        missing("no rabbitmq-server here: the cluster tests start three nodes of it")
    request.getfixturevalue("shared_broker_untouched")
    started = Cluster()
    try:
        started.start()
    except NodeError as exc:
        started.close()
        pytest.fail(f"could not start a 3-node cluster: {exc}")
    try:
        settings = Settings(amqp_url=SecretStr(started.url), retry_tiers=FAST_TIERS)
        asyncio.run(declare_topology(settings))
        asyncio.run(prepare_outcome_queue(started.nodes[0].url))
        yield started
    finally:
        started.close()


@pytest.fixture
async def stack(cluster: Cluster, stacks: list[FaultStack], tmp_path: Path
                ) -> AsyncIterator[FaultStack]:
    """Sandbox, ingress (with its spool) and worker on the whole cluster."""
    await asyncio.to_thread(cluster.wait_whole, WORK)
    running = FaultStack(cluster.url, ZENOTI_EVENTS_SPOOL_DIR=str(tmp_path / "spool"))
    stacks.append(running)
    running.sandbox_unlimited()
    await asyncio.to_thread(running.ingress)
    await asyncio.to_thread(running.worker)
    yield running


def test_every_work_queue_is_a_quorum_queue_on_all_three_nodes(cluster: Cluster) -> None:
    names = {node.name for node in cluster.nodes}
    assert len(names) == 3 and cluster.running_nodes() == names
    queues = cluster.queues()
    for name in WORK:
        assert queues[name]["type"] == "quorum", queues[name]
        assert set(queues[name]["members"]) == set(queues[name]["online"]) == names


def send(stack: FaultStack, count: int, seed: int) -> asyncio.Task[SimulatorReport]:
    """Zenoti's sender at real time, at ``RATE``."""
    sent = build_deliveries(Organisation.generate(1), count, seed=seed, unknown_ratio=0.02)
    config = SimulatorConfig.zenoti(stack.webhook_url, 1.0, secret=SECRET, count=count,
                                    rate=RATE, concurrency=64)
    return asyncio.create_task(run_simulator(config, deliveries=sent))


async def record(cluster: Cluster, watch: Watch, name: str, report: SimulatorReport,
                 fault_at: float, started: float, **notes: object) -> Figures:
    """Wait for the cluster to be whole and the work done, count, keep the figures."""
    await watch.stop()
    whole = await asyncio.to_thread(cluster.wait_whole, WORK)
    url = cluster.answering().url
    waited = await settle(url, report.accepted_2xx)
    figures = await account(url, name, report)
    figures.notes = {
        "by_status": dict(sorted(report.by_status.items())), "resends": report.resends,
        "given_up": report.given_up, "switched_off": report.switched_off,
        "max_latency_2xx": round(max(report.latencies_2xx, default=0.0), 3),
        **watch.figures(fault_at), **notes, "whole_again_s": round(whole, 1),
        "settle_seconds": round(waited, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.append(figures)
    assert figures.lost == 0, figures
    assert report.accepted_2xx == report.sent == figures.sent, figures
    return figures


async def test_kill_9_of_the_node_holding_the_leaders_loses_nothing(
    cluster: Cluster, stack: FaultStack
) -> None:
    """The first node holds every leader and every connection of ours (the first address):
    the worst node to lose."""
    victim = cluster.nodes[0]
    await asyncio.to_thread(cluster.lead_from, victim)
    started = time.monotonic()
    watch = Watch(stack)
    watch.start()
    sending = send(stack, 2000, seed=41)
    await asyncio.sleep(8.0)
    fault_at = time.monotonic()
    await asyncio.to_thread(victim.kill)
    await asyncio.sleep(12.0)
    leaders_after = await asyncio.to_thread(cluster.leaders, WORK)
    await asyncio.to_thread(victim.start)
    report = await sending
    figures = await record(cluster, watch, "cluster: kill -9 of the leaders' node", report,
                           fault_at, started, down_seconds=12.0)
    assert victim.name not in leaders_after.values(), leaders_after
    assert figures.notes["recovered_after_s"] is not None, figures


async def test_a_rolling_upgrade_node_by_node_loses_nothing(
    cluster: Cluster, stack: FaultStack
) -> None:
    started = time.monotonic()
    watch = Watch(stack)
    watch.start()
    sending = send(stack, 5000, seed=42)
    await asyncio.sleep(5.0)
    steps: list[tuple[float, float]] = []
    for node in cluster.nodes:
        began = time.monotonic()
        await asyncio.to_thread(cluster.upgrade, node)
        steps.append((began, time.monotonic()))
    report = await sending
    # Each step's recovery: from its drain until well, before the next step began.
    ends = [began for began, _ in steps[1:]] + [float("inf")]
    recovered = [watch.recovered_after(began, until) for (began, _), until in zip(
        steps, ends, strict=True)]
    figures = await record(cluster, watch, "cluster: rolling upgrade, 3 nodes", report,
                           steps[-1][0], started,
                           upgrade_seconds=round(steps[-1][1] - steps[0][0], 1),
                           step_seconds=[round(end - began, 1) for began, end in steps],
                           step_recovered_after_s=recovered)
    assert None not in recovered, figures


async def test_a_node_partitioned_from_its_peers_pauses_and_loses_nothing(
    cluster: Cluster, stack: FaultStack
) -> None:
    """The first node, holding every leader and every connection of ours, is cut from the
    other two: it pauses (``pause_minority``), which closes our connections, and the two
    elect new leaders."""
    cut = cluster.nodes[0]
    await asyncio.to_thread(cluster.lead_from, cut)
    started = time.monotonic()
    watch = Watch(stack)
    watch.start()
    sending = send(stack, 2000, seed=43)
    await asyncio.sleep(8.0)
    fault_at = time.monotonic()
    await asyncio.to_thread(cluster.partition, cut)
    try:
        await asyncio.sleep(15.0)
        leaders_during = await asyncio.to_thread(cluster.leaders, WORK)
    finally:
        await asyncio.to_thread(cluster.heal, cut)
    report = await sending
    figures = await record(cluster, watch, "cluster: one node partitioned 15 s", report,
                           fault_at, started, partitioned_seconds=15.0)
    assert cut.name not in leaders_during.values(), leaders_during
    assert figures.notes["recovered_after_s"] is not None, figures

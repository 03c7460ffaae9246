"""The fault tests' bookkeeping: real processes, real broker, and the invariant.

The invariant: every delivery answered 2xx is, at the end, either on ``zenoti.enriched`` (at
least once; the duplicates are counted) or in a parking lot with its reason; nothing else.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import aio_pika

from processor.broker import topology
from processor.broker.topology import delay_queue_name
from processor.dev.simulator import SimulatorReport
from processor.settings import DEFAULT_TENANT
from tests.integration.amqp import DEFAULT_TIERS, channel
from tests.integration.processes import Stack

OUTCOME = "test.outcome"
HANDLERS = ("membership-freeze", "guestpass-redeemed", "package-status", "example-echo")
FAST_TIERS = [0.2, 0.5, 1.0, 2.0]


def redis_url() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return None
    return "redis://127.0.0.1:6379/0"


class FaultStack(Stack):
    """A stack sized for thousands of events in seconds: a generous API budget, fast retry
    tiers, short timeouts, Redis de-duplication when Redis runs here."""

    extra_env: dict[str, str]

    def __init__(self, amqp_url: str, **env: str) -> None:
        super().__init__(amqp_url)
        self.extra_env = {
            "ZENOTI_EVENTS_API_CALLS_PER_WINDOW": "1000000",
            "ZENOTI_EVENTS_API_WINDOW_SECONDS": "1",
            "ZENOTI_EVENTS_RETRY_TIERS": json.dumps(FAST_TIERS),
            "ZENOTI_EVENTS_RETRY": '{"max_attempts": 30, "max_age_seconds": 600}',
            "ZENOTI_EVENTS_PREFETCH": "64",
            "ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS": "0",
            "ZENOTI_EVENTS_LOG_LEVEL": "warning",
            "ZENOTI_EVENTS_REDIS_PREFIX": f"fault-{uuid.uuid4().hex[:8]}",
            **({"ZENOTI_EVENTS_REDIS_URL": url} if (url := redis_url()) else {}),
            **env,
        }

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.extra_env}

    def sandbox_unlimited(self, *extra: str) -> None:
        self.sandbox("--calls-per-window", "1000000", "--window-seconds", "1", *extra)


async def prepare_outcome_queue(url: str) -> None:
    """A durable queue that keeps every enriched event, broker restarts included."""
    async with channel(url) as ch:
        await ch.queue_delete(OUTCOME)
        await topology.declare(ch, [])
        exchange = await ch.get_exchange(topology.ENRICHED)
        queue = await ch.declare_queue(OUTCOME, durable=True,
                                       arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, "#")


async def depths(url: str, names: list[str]) -> dict[str, int]:
    out = {}
    async with channel(url) as ch:
        for name in names:
            declared = await ch.declare_queue(name, passive=True)
            out[name] = declared.declaration_result.message_count or 0
    return out


def _pending_queues() -> list[str]:
    names = [topology.queue_name(h) for h in HANDLERS]
    return names + [delay_queue_name(h, t) for h in HANDLERS for t in FAST_TIERS]


async def settle(url: str, accepted: int, timeout: float = 240.0) -> float:
    """Wait until nothing is queued for work or retry and the outcome stops changing."""
    started = time.monotonic()
    last, stable_since = -1, time.monotonic()
    lots = [OUTCOME, topology.UNROUTED, *[topology.dead_queue_name(h) for h in HANDLERS]]
    while time.monotonic() - started < timeout:
        pending = sum((await depths(url, _pending_queues())).values())
        done = sum((await depths(url, lots)).values())
        if done != last:
            last, stable_since = done, time.monotonic()
        if pending == 0 and done >= accepted and time.monotonic() - stable_since > 2.0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def take_all(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got = []
    async with channel(url) as ch:
        q = await ch.get_queue(queue)
        while (message := await q.get(fail=False)) is not None:
            await message.ack()
            got.append(message)
    return got


@dataclass
class Figures:
    """What a fault test reports; ``lost`` must be 0."""

    name: str
    sent: int = 0
    accepted_2xx: int = 0
    enriched: int = 0
    parked: int = 0
    enriched_and_parked: int = 0  # handled, then parked too (e.g. beside a crash, unacked)
    lost: int = 0
    duplicates: int = 0
    extra: int = 0
    seconds: float = 0.0
    parked_reasons: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # Per event key: the parking reasons, and whether it was enriched (not printed).
    reasons_of: dict[str, set[str]] = field(default_factory=dict, repr=False)
    enriched_keys: set[str] = field(default_factory=set, repr=False)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if k not in ("reasons_of", "enriched_keys")}


async def account(url: str, name: str, report: SimulatorReport) -> Figures:
    """Drain the outcome and every parking lot, and check the invariant's bookkeeping."""
    enriched = await take_all(url, OUTCOME)
    keys = Counter(_event_id((m.message_id or "").rsplit(":", 2)[0]) for m in enriched)
    parked: dict[str, set[str]] = {}
    for lot in [topology.UNROUTED, *[topology.dead_queue_name(h) for h in HANDLERS]]:
        for message in await take_all(url, lot):
            parked.setdefault(_event_id(message.message_id or ""), set()).add(
                _reason(message, lot))
    accepted = set(report.accepted_ids)
    outcome = set(keys) | set(parked)
    return Figures(
        name=name, sent=report.sent, accepted_2xx=report.accepted_2xx,
        enriched=len(set(keys) & accepted), parked=len(set(parked) & accepted),
        enriched_and_parked=len(set(keys) & set(parked) & accepted),
        lost=len(accepted - outcome), duplicates=sum(keys.values()) - len(keys),
        extra=len(outcome - accepted), seconds=report.seconds,
        parked_reasons=dict(Counter(r for k in set(parked) & accepted for r in parked[k])),
        reasons_of=parked, enriched_keys=set(keys),
    )


def _event_id(message_id: str) -> str:
    """The event id of a tenant-scoped message id (``<tenant>:<event id>``, the simulator
    posts to the default tenant)."""
    return message_id.removeprefix(f"{DEFAULT_TENANT}:")


def _reason(message: aio_pika.abc.AbstractIncomingMessage, lot: str) -> str:
    if lot == topology.UNROUTED:
        return "unrouted"
    reason = message.headers.get("x-zenoti-reason")
    if reason:
        return str(reason)
    deaths = message.headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        return f"broker:{reason.decode() if isinstance(reason, bytes) else reason}"
    return "unknown"


RESULTS: list[Figures] = []


async def reset_all(url: str) -> None:
    """Delete every queue a fault test may have declared, in this test session's vhost."""
    tiers = sorted({*FAST_TIERS, *DEFAULT_TIERS})
    async with channel(url) as ch:
        for handler in HANDLERS:
            for name in (topology.queue_name(handler), topology.dead_queue_name(handler),
                         *[delay_queue_name(handler, t) for t in tiers]):
                await ch.queue_delete(name)
        await ch.queue_delete(topology.UNROUTED)
    await prepare_outcome_queue(url)

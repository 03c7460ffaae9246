"""Dispatch, retry and de-duplication on the in-memory broker: every fate of a message, and
every way its copy can fail, settle it as the real broker would be asked to."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, SecretStr

from processor import Context, Event, PermanentError, ZenotiUnavailable
from processor import message as m
from processor.broker.memory import MemoryBroker
from processor.broker.memory_client import MemoryMessage, Queued
from processor.broker.protocols import IncomingMessage, Publisher
from processor.broker.topology import DEAD, ENRICHED, EVENTS, UNCLAIMED, Binding
from processor.errors import BrokerUnavailable, PublishRefused
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import RetryLimits, Settings
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import Dispatcher
from processor.worker.retry import RetryPolicy
from processor.zenoti.clients import ZenotiClients

WORK = "zenoti.h.tiny"
DELAY = "zenoti.h.tiny.retry.5s"
LOT = "zenoti.h.tiny.dead"


class Item(BaseModel):
    n: int


class Done(BaseModel):
    key: str
    attempt: int


class Tiny:
    """Raises, per event key, the exceptions queued in ``script``, then publishes ``Done``.
    Calls no Zenoti API."""

    name: ClassVar[str] = "tiny"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Tiny",)
    schema: ClassVar[type[BaseModel]] = Item

    def __init__(self, broker: MemoryBroker) -> None:
        self.script: dict[str, list[Exception]] = {}
        self.calls: Counter[str] = Counter()
        self.unsettled_after_publish: list[int] = []
        self._broker = broker

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        self.calls[event.key] += 1
        if self.script.get(event.key):
            raise self.script[event.key].pop(0)
        await ctx.publish("test.done", Done(key=event.key, attempt=event.attempt))
        self.unsettled_after_publish.append(len(self._broker.unsettled))


REQUEUE_PAUSE = 0.2


class Rig:
    """A ``Dispatcher`` of ``Tiny`` over a ``MemoryBroker`` with one 5 s delay tier."""

    def __init__(self, clients: ZenotiClients, max_attempts: int = 3) -> None:
        self.broker = MemoryBroker([Binding("tiny", Tiny.event_types)], retry_tiers=[5.0])
        self.handler = Tiny(self.broker)
        self.metrics = Metrics()
        self.delivered: list[MemoryMessage] = []
        publisher: Publisher = self.broker.publisher
        limits = RetryLimits(max_attempts=max_attempts, max_age_seconds=3600)
        self.dispatcher = Dispatcher(
            self.handler, publisher=publisher, clients=clients, tenants=frozenset({"default"}),
            retry=RetryPolicy("tiny", [5.0], limits, random.Random(7)),
            done=MemoryDeduplicator(600, 100), metrics=self.metrics, log=get_logger(test="mem"),
            requeue_pause=REQUEUE_PAUSE)

    def send(self, key: str, data: object = None, *, message_id: str | None = None,
             headers: dict[str, Any] | None = None) -> None:
        """An event as the ingress publishes it (``headers``: more of them)."""
        body = json.dumps({"event_id": key, "event_type": "Test.Tiny",
                           "data": {"n": 1} if data is None else data}).encode()
        self.broker.route(EVENTS, "test.tiny", Queued(
            body, {m.TENANT: "default", m.EVENT_TYPE: "Test.Tiny", **(headers or {})},
            message_id=message_id or f"default:{key}", content_type="application/json"))

    async def run(self) -> int:
        async def consume(message: IncomingMessage) -> None:
            assert isinstance(message, MemoryMessage)
            self.delivered.append(message)
            await self.dispatcher(message)

        return await self.broker.deliver(WORK, consume)

    def outcome(self, label: str) -> float | None:
        """``zenoti_events_messages_total`` of this handler and ``label``."""
        return self.metrics.registry.get_sample_value(
            "zenoti_events_messages_total", {"handler": "tiny", "outcome": label})


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    settings = Settings(api_key=SecretStr("k"))
    clients = ZenotiClients(settings, Metrics())
    yield Rig(clients)
    await clients.aclose()


def outputs(broker: MemoryBroker) -> list[dict[str, Any]]:
    return [json.loads(q.body) for q in broker.messages(UNCLAIMED)]


async def test_a_handled_event_is_acked_only_after_its_output_was_confirmed(rig: Rig) -> None:
    rig.send("k1")
    assert await rig.run() == 1
    assert rig.handler.unsettled_after_publish == [1]  # confirmed while the event was held
    assert [d.settled for d in rig.delivered] == ["ack"]
    [output] = rig.broker.messages(UNCLAIMED)
    assert json.loads(output.body) == {"key": "k1", "attempt": 1}
    assert output.message_id == m.output_id("default", "k1", "tiny", "test.done")
    assert output.headers[m.HANDLER] == "tiny" and output.headers[m.TENANT] == "default"
    assert (output.exchange, output.routing_key) == (ENRICHED, "test.done")
    assert rig.broker.messages(WORK) == [] and rig.broker.unsettled == []


async def test_an_output_not_confirmed_retries_the_event_instead_of_acking_it_as_done(
    rig: Rig,
) -> None:
    rig.broker.publisher.fail(BrokerUnavailable("no confirm"), exchange=ENRICHED)
    rig.send("k1")
    await rig.run()
    assert outputs(rig.broker) == []
    [waiting] = rig.broker.messages(DELAY)
    assert waiting.headers[m.ATTEMPT] == 2
    rig.broker.advance()
    await rig.run()
    assert outputs(rig.broker) == [{"key": "k1", "attempt": 2}]
    assert rig.handler.calls["k1"] == 2  # not remembered as done the first time


async def test_a_transient_error_waits_its_tier_in_the_delay_queue_and_returns_as_attempt_2(
    rig: Rig,
) -> None:
    rig.handler.script["k1"] = [ZenotiUnavailable("503")]
    rig.send("k1")
    await rig.run()
    assert [d.settled for d in rig.delivered] == ["ack"]  # the copy is confirmed: acked
    [waiting] = rig.broker.messages(DELAY)
    assert waiting.message_id == "default:k1" and waiting.body == rig.delivered[0].body
    assert waiting.headers[m.ATTEMPT] == 2
    assert [h["reason"] for h in waiting.headers[m.HISTORY]] == ["zenoti_unavailable"]
    assert datetime.fromisoformat(str(waiting.headers[m.FIRST_FAILURE]))
    assert rig.broker.advance(4.9) == 0 and rig.broker.messages(WORK) == []
    assert rig.broker.advance(0.1) == 1
    [back] = rig.broker.messages(WORK)
    assert back.headers[m.DEATHS][0]["reason"] == "expired"
    await rig.run()
    assert outputs(rig.broker) == [{"key": "k1", "attempt": 2}]
    assert rig.outcome("retry") == 1 and rig.outcome("ok") == 1


@pytest.mark.parametrize(("raised", "data", "reason", "calls"), [
    (PermanentError("the centre is gone"), {"n": 1}, "permanent", 1),
    (None, {"n": "not a number"}, "invalid_payload", 0),
])
async def test_a_permanent_error_or_an_invalid_payload_is_parked_at_once_with_its_reason(
    rig: Rig, raised: Exception | None, data: object, reason: str, calls: int,
) -> None:
    if raised is not None:
        rig.handler.script["k1"] = [raised]
    rig.send("k1", data)
    await rig.run()
    assert [d.settled for d in rig.delivered] == ["ack"]
    [parked] = rig.broker.messages(LOT)
    assert parked.headers[m.REASON] == reason
    assert parked.headers[m.PARKED_BY] == "tiny" and parked.headers[m.ATTEMPT] == 1
    assert ("centre is gone" if raised else "n") in str(parked.headers[m.ERROR])
    assert datetime.fromisoformat(str(parked.headers[m.DEAD_AT]))
    assert (parked.exchange, parked.routing_key) == (DEAD, WORK)
    assert rig.broker.messages(DELAY) == [] and rig.handler.calls["k1"] == calls


@pytest.mark.parametrize("tenant", [42, ["default"], {"name": "default"}])
async def test_a_tenant_header_that_is_not_text_is_parked_never_run_as_the_default_tenant(
    rig: Rig, tenant: object,
) -> None:
    body = json.dumps({"event_id": "k1", "event_type": "Test.Tiny", "data": {"n": 1}}).encode()
    rig.broker.route(EVENTS, "test.tiny", Queued(
        body, {m.TENANT: tenant, m.EVENT_TYPE: "Test.Tiny"}, message_id="k1",
        content_type="application/json"))
    await rig.run()
    [parked] = rig.broker.messages(LOT)
    assert parked.headers[m.REASON] == "permanent"
    assert "tenant header is not text" in str(parked.headers[m.ERROR])
    assert rig.handler.calls["k1"] == 0 and outputs(rig.broker) == []


async def test_a_message_whose_attempts_run_out_is_parked_with_its_whole_history(
    rig: Rig,
) -> None:
    rig.handler.script["k1"] = [ZenotiUnavailable(f"503 #{n}") for n in range(3)]
    rig.send("k1")
    for _ in range(3):
        await rig.run()
        rig.broker.advance()
    [parked] = rig.broker.messages(LOT)
    assert parked.headers[m.REASON] == "attempts_exhausted"
    assert [h["attempt"] for h in parked.headers[m.HISTORY]] == [1, 2, 3]
    assert "503 #2" in parked.headers[m.HISTORY][2]["error"]
    assert m.DEATHS not in parked.headers  # the broker's own history is not carried over
    assert rig.handler.calls["k1"] == 3 and rig.broker.messages(WORK) == []


async def test_a_duplicate_of_a_handled_event_is_acked_without_running_it(rig: Rig) -> None:
    rig.send("k1")
    rig.send("k1")
    rig.send("k1", message_id="k1")  # an id not scoped yet: the same tenant and key
    assert await rig.run() == 3
    assert [d.settled for d in rig.delivered] == ["ack", "ack", "ack"]
    assert rig.handler.calls["k1"] == 1 and len(outputs(rig.broker)) == 1
    assert rig.outcome("duplicate") == 2


async def test_a_replay_from_the_archive_runs_a_handled_event_again_and_says_so_on_its_output(
    rig: Rig,
) -> None:
    rig.send("k1")
    rig.send("k1", headers={m.REPLAY_OF: "default:k1"})
    rig.send("k1", headers={m.REPLAY_OF: "default:k1"})  # replayed twice: run twice
    rig.send("k1")  # still remembered: a plain duplicate after the replays
    assert await rig.run() == 4
    assert rig.handler.calls["k1"] == 3 and rig.outcome("duplicate") == 1
    first, *replays = rig.broker.messages(UNCLAIMED)
    assert m.REPLAY_OF not in first.headers
    assert [o.headers[m.REPLAY_OF] for o in replays] == ["default:k1", "default:k1"]
    # The same stable id: a consumer that de-duplicates drops it; one that reads the header
    # knows it is a re-run.
    assert {o.message_id for o in (first, *replays)} == {
        m.output_id("default", "k1", "tiny", "test.done")}


async def test_a_replay_that_fails_keeps_its_provenance_into_its_retry(rig: Rig) -> None:
    rig.send("k1")
    await rig.run()
    rig.handler.script["k1"] = [ZenotiUnavailable("503")]
    rig.send("k1", headers={m.REPLAY_OF: "default:k1"})
    await rig.run()
    [retry] = rig.broker.messages(DELAY)
    assert retry.headers[m.REPLAY_OF] == "default:k1"  # so its next attempt runs too
    rig.broker.advance(5.0)
    await rig.run()
    assert rig.handler.calls["k1"] == 3 and rig.outcome("duplicate") == 0


async def test_a_failed_event_is_not_a_duplicate_when_it_comes_back(rig: Rig) -> None:
    rig.handler.script["k1"] = [PermanentError("bad")]
    rig.send("k1")
    rig.send("k1")
    await rig.run()
    assert rig.handler.calls["k1"] == 2 and len(outputs(rig.broker)) == 1


@pytest.mark.parametrize(("raised", "exchange"), [
    (ZenotiUnavailable("503"), ""),  # its retry copy
    (PermanentError("bad"), DEAD),  # its dead letter
])
async def test_a_copy_that_is_not_confirmed_nacks_the_message_back_to_its_queue(
    rig: Rig, raised: Exception, exchange: str,
) -> None:
    rig.handler.script["k1"] = [raised, raised]
    rig.broker.publisher.fail(BrokerUnavailable("no confirm"), exchange=exchange)
    rig.send("k1")
    started = time.monotonic()
    assert await rig.run() == 2  # back at the head, and delivered again
    assert time.monotonic() - started >= REQUEUE_PAUSE  # not at once: no hot loop
    first, second = rig.delivered
    assert (first.settled, second.settled) == ("nack", "ack")
    assert second.redelivered and second.headers[m.DELIVERY_COUNT] == 1
    assert len(rig.broker.messages(DELAY)) + len(rig.broker.messages(LOT)) == 1


async def test_a_retry_copy_the_broker_refuses_is_parked_without_its_retry_headers(
    rig: Rig,
) -> None:
    rig.handler.script["k1"] = [ZenotiUnavailable("503"), ZenotiUnavailable("503 again")]
    rig.send("k1")
    await rig.run()
    rig.broker.advance()
    rig.broker.publisher.fail(PublishRefused("headers too large"), exchange="")
    await rig.run()  # attempt 2, with a history, whose next retry copy is refused
    assert [d.settled for d in rig.delivered] == ["ack", "ack"]
    assert m.HISTORY in rig.delivered[1].headers
    [parked] = rig.broker.messages(LOT)
    assert parked.headers[m.REASON] == "publish_refused"
    assert parked.headers[m.ERROR] == "zenoti_unavailable: headers too large"
    assert parked.headers[m.ATTEMPT] == 1 and m.HISTORY not in parked.headers
    # its identity stays: a replay runs as the same tenant, never as the default one
    assert (parked.headers[m.TENANT], parked.headers[m.EVENT_TYPE]) == ("default", "Test.Tiny")
    assert rig.broker.messages(DELAY) == []


async def test_when_even_the_dead_letter_is_refused_the_message_is_rejected_into_the_lot(
    rig: Rig,
) -> None:
    rig.handler.script["k1"] = [ZenotiUnavailable("503")]
    rig.broker.publisher.fail(PublishRefused("too large"), exchange="")
    rig.broker.publisher.fail(PublishRefused("too large"), exchange=DEAD)
    rig.send("k1")
    await rig.run()
    assert [d.settled for d in rig.delivered] == ["reject"]
    [parked] = rig.broker.messages(LOT)
    assert m.REASON not in parked.headers  # the broker parked it: only its x-death says why
    assert [(d["queue"], d["reason"]) for d in parked.headers[m.DEATHS]] == [(WORK, "rejected")]
    assert rig.outcome("dead_letter") == 1

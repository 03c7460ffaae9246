"""Retries wait in the broker's delay queues; exhausted ones are parked with their history."""

from __future__ import annotations

import json
import time

import pytest

from processor import RateLimited, ZenotiUnavailable
from processor.broker.topology import ENRICHED
from processor.errors import UnexpectedResponse
from tests.conftest import Broker
from tests.headers import tables, text
from tests.integration.amqp import collect, depth, drain, listener, reset
from tests.integration.inprocess import BINDINGS, Scripted, send, settings_for, worker

pytestmark = pytest.mark.integration

DEAD = "zenoti.h.scripted.dead"


@pytest.fixture
async def url(broker: Broker) -> str:
    await reset(broker.url, BINDINGS)
    Scripted.script.clear()
    Scripted.calls.clear()
    return broker.url


async def test_a_transient_failure_is_retried_after_a_delay_and_then_succeeds(url: str) -> None:
    Scripted.script["k1"] = [ZenotiUnavailable("503"), ZenotiUnavailable("503")]
    async with worker(settings_for(url), [Scripted()]), listener(url, ENRICHED) as out:
        started = time.monotonic()
        await send(url, "Test.Scripted", "k1", {"n": 1})
        [done] = await collect(out, 1, timeout=15)
        waited = time.monotonic() - started
    assert json.loads(done.body) == {"key": "k1", "attempt": 3}
    assert Scripted.calls["k1"] == 3
    assert waited >= 0.3 + 0.3  # two stays in delay queues (jitter may choose the 0.6 s tier)


async def test_exhausted_retries_are_dead_lettered_with_their_history(url: str) -> None:
    Scripted.script["k2"] = [ZenotiUnavailable(f"503 #{i}") for i in range(10)]
    async with worker(settings_for(url), [Scripted()]):
        await send(url, "Test.Scripted", "k2", {"n": 2})
        [dead] = await drain(url, DEAD, 1, timeout=15)
    assert Scripted.calls["k2"] == 3
    assert dead.headers["x-zenoti-reason"] == "attempts_exhausted"
    history = tables(dead.headers["x-zenoti-history"])
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert "503 #2" in history[2]["error"]
    assert "x-death" not in dead.headers


async def test_rate_limiting_waits_for_the_tier_covering_retry_after(url: str) -> None:
    Scripted.script["k3"] = [RateLimited("429", retry_after=0.5)]
    async with worker(settings_for(url), [Scripted()]), listener(url, ENRICHED) as out:
        started = time.monotonic()
        await send(url, "Test.Scripted", "k3", {"n": 3})
        [done] = await collect(out, 1, timeout=15)
    assert time.monotonic() - started >= 0.6
    assert json.loads(done.body)["attempt"] == 2


async def test_a_retry_holds_no_prefetch_slot_while_it_waits(url: str) -> None:
    Scripted.script["slow"] = [ZenotiUnavailable("503")]
    settings = settings_for(url, prefetch=1, retry_tiers=[8.0])
    async with worker(settings, [Scripted()]), listener(url, ENRICHED) as out:
        await send(url, "Test.Scripted", "slow", {"n": 1})
        await send(url, "Test.Scripted", "fast", {"n": 2})
        first = await collect(out, 1, timeout=7)  # within the retry's wait
        assert json.loads(first[0].body)["key"] == "fast"
        assert await depth(url, "zenoti.h.scripted.retry.8s") == 1
        second = await collect(out, 1, timeout=20)
    assert json.loads(second[0].body)["key"] == "slow"


async def test_a_redelivered_event_already_handled_is_not_run_again(url: str) -> None:
    async with worker(settings_for(url), [Scripted()]), listener(url, ENRICHED) as out:
        await send(url, "Test.Scripted", "k4", {"n": 4})
        await collect(out, 1, timeout=10)
        await send(url, "Test.Scripted", "k4", {"n": 4})
        again = await collect(out, 1, timeout=2)
    assert again == []
    assert Scripted.calls["k4"] == 1


async def test_an_invalid_payload_is_parked_at_once(url: str) -> None:
    async with worker(settings_for(url), [Scripted()]):
        await send(url, "Test.Scripted", "k5", {"n": "not a number"})
        [dead] = await drain(url, DEAD, 1, timeout=10)
    assert dead.headers["x-zenoti-reason"] == "invalid_payload"
    assert "n" in text(dead.headers["x-zenoti-error"])
    assert "k5" not in Scripted.calls


async def test_a_handler_that_hangs_is_cut_at_its_deadline_and_retried(url: str) -> None:
    Scripted.script["k-hang"] = [3600.0]
    settings = settings_for(url, handler_timeout=0.5)
    async with worker(settings, [Scripted()]), listener(url, ENRICHED) as out:
        started = time.monotonic()
        await send(url, "Test.Scripted", "k-hang", {"n": 1})
        [done] = await collect(out, 1, timeout=15)
    assert json.loads(done.body) == {"key": "k-hang", "attempt": 2}
    assert time.monotonic() - started < 10


async def test_a_message_whose_copies_the_broker_would_refuse_is_parked_by_the_broker(
    url: str,
) -> None:
    # The retry copy and the dead letter are both over the publisher's size limit: the
    # original is rejected, and the work queue dead-letters it into the parking lot.
    Scripted.script["k-big"] = [ZenotiUnavailable("503")]
    settings = settings_for(url, max_body_bytes=1024, broker_max_message_size=64 * 1024 + 2048)
    async with worker(settings, [Scripted()]):
        await send(url, "Test.Scripted", "k-big", {"n": 1, "pad": "x" * 3000})
        [dead] = await drain(url, DEAD, 1, timeout=15)
    assert b"x" * 3000 in dead.body
    assert tables(dead.headers["x-death"])[0]["reason"] == "rejected"
    assert Scripted.calls["k-big"] == 1


async def test_a_shape_zenoti_keeps_answering_is_parked_as_unexpected_response(url: str) -> None:
    Scripted.script["k-shape"] = [UnexpectedResponse(f"no 'packages' #{i}") for i in range(5)]
    async with worker(settings_for(url), [Scripted()]):
        await send(url, "Test.Scripted", "k-shape", {"n": 1})
        [dead] = await drain(url, DEAD, 1, timeout=15)
    assert dead.headers["x-zenoti-reason"] == "unexpected_response"
    history = tables(dead.headers["x-zenoti-history"])
    assert [h["reason"] for h in history] == ["unexpected_response"] * 3

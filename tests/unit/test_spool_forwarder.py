"""The forwarder: oldest first, deleted only once confirmed, and no record can block the rest.

A scripted publisher stands in for the broker (the real one is in
``tests/integration/test_spool.py`` and the fault tests); the spool is real files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from processor.broker.protocols import Headers
from processor.broker.topology import EVENTS, INGRESS, PARKED, UNROUTED
from processor.errors import BrokerUnavailable, PublishRefused
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.spool.forwarder import Forwarder
from processor.spool.spool import Spool, Spooled


class Broker:
    """Confirms every publish, except those its rules refuse; records what it took."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, str, Headers]] = []  # (exchange, message id, headers)
        self.refuse: dict[tuple[str, str], Exception] = {}  # (exchange, id) -> raised
        self.away_after: int | None = None  # confirm this many, then BrokerUnavailable
        self.in_flight = 0
        self.most_in_flight = 0

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      message_id: str, headers: Headers | None = None,
                      confirm_timeout: float = 5.0,
                      content_type: str = "application/json") -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            if (exchange, message_id) in self.refuse:
                raise self.refuse[exchange, message_id]
            if self.away_after is not None and len(self.taken) >= self.away_after:
                raise BrokerUnavailable("not connected to the broker")
            self.taken.append((exchange, message_id, dict(headers or {})))
        finally:
            self.in_flight -= 1


def _record(n: int) -> Spooled:
    return Spooled(EVENTS, "invoice.closed", f"acme:{n}", {"tenant": "acme"}, b"{}",
                   1_700_000_000.0 + n)


async def _filled(directory: Path, count: int) -> Spool:
    spool = Spool(directory, max_bytes=64 * 1024 * 1024, segment_bytes=1024 * 1024,
                  metrics=Metrics(), log=get_logger(test="forwarder"))
    await spool.open()
    for n in range(count):
        await spool.append(_record(n))
    return spool


def _forwarder(spool: Spool, broker: Broker) -> Forwarder:
    return Forwarder(spool, broker, confirm_timeout=1.0, log=get_logger(test="forwarder"),
                     backoff=0.01, max_delay=0.02, window=8)


async def test_records_are_forwarded_oldest_first_and_deleted(tmp_path: Path) -> None:
    spool, broker = await _filled(tmp_path, 20), Broker()
    assert await _forwarder(spool, broker).forward_batch()
    assert [m for _, m, _ in broker.taken] == [f"acme:{n}" for n in range(20)]
    assert spool.empty and spool.bytes == 0
    await spool.close()


async def test_an_unconfirmed_record_and_those_after_it_stay_then_go_one_at_a_time(
    tmp_path: Path,
) -> None:
    spool, broker = await _filled(tmp_path, 20), Broker()
    broker.away_after = 3
    forwarder = _forwarder(spool, broker)
    await forwarder.forward_batch()
    assert spool.entries == 20 - 3 and forwarder.failures == 1

    broker.away_after, broker.most_in_flight = None, 0
    taken = len(broker.taken)
    first_of_next = await spool.batch()
    assert first_of_next[0][1].message_id == "acme:3"  # resumes at the oldest unconfirmed
    await forwarder.forward_batch()
    assert spool.empty
    assert [m for _, m, _ in broker.taken[taken:]] == [f"acme:{n}" for n in range(3, 20)]
    await spool.close()


async def test_a_probe_after_a_failure_sends_one_record_not_a_window(tmp_path: Path) -> None:
    spool, broker = await _filled(tmp_path, 20), Broker()
    broker.away_after = 0
    forwarder = _forwarder(spool, broker)
    await forwarder.forward_batch()  # a window of 8, all unconfirmed
    assert broker.most_in_flight == 8
    broker.most_in_flight = 0
    await forwarder.forward_batch()  # the broker still away: one record, not eight
    assert broker.most_in_flight == 1
    await spool.close()


async def test_a_record_the_broker_refuses_is_parked_with_why_and_the_rest_go_on(
    tmp_path: Path,
) -> None:
    spool, broker = await _filled(tmp_path, 5), Broker()
    broker.refuse[EVENTS, "acme:2"] = PublishRefused("message size 99 is larger than max 9")
    await _forwarder(spool, broker).forward_batch()
    assert [m for x, m, _ in broker.taken if x == EVENTS] == ["acme:0", "acme:1", "acme:3",
                                                              "acme:4"]
    [parked] = [h for x, _, h in broker.taken if x == PARKED]
    assert parked["x-zenoti-reason"] == "publish_refused" and parked["tenant"] == "acme"
    assert "larger than max" in str(parked["x-zenoti-error"])
    assert spool.empty
    await spool.close()


async def test_a_record_refused_even_as_parked_is_kept_on_disk_for_an_operator(
    tmp_path: Path,
) -> None:
    spool, broker = await _filled(tmp_path, 3), Broker()
    for exchange in (EVENTS, PARKED):
        broker.refuse[exchange, "acme:1"] = PublishRefused("refused")
    with capture_logs() as logs:
        await _forwarder(spool, broker).forward_batch()
    assert [m for _, m, _ in broker.taken] == ["acme:0", "acme:2"]
    (kept,) = (tmp_path / "refused").iterdir()
    assert _record(1).encode() == kept.read_bytes()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["spool.refused_kept"]
    assert spool.empty
    await spool.close()


async def test_a_drain_with_the_broker_away_ends_in_time_and_leaves_the_rest(
    tmp_path: Path,
) -> None:
    spool, broker = await _filled(tmp_path, 4), Broker()
    broker.away_after = 1
    with capture_logs() as logs:
        async with asyncio.timeout(5):
            assert not await _forwarder(spool, broker).drain(within=0.3)
    assert spool.entries == 3
    assert [e["entries"] for e in logs if e["event"] == "spool.left_on_disk"] == [3]
    await spool.close()


async def test_run_forwards_each_write_and_stops_when_asked(tmp_path: Path) -> None:
    spool, broker = await _filled(tmp_path, 0), Broker()
    stop = asyncio.Event()
    running = asyncio.create_task(_forwarder(spool, broker).run(stop))
    await spool.append(_record(7))
    async with asyncio.timeout(5):
        while not spool.empty:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert [m for _, m, _ in broker.taken] == ["acme:7"]
    await spool.close()


@pytest.mark.parametrize("count", [0, 1])
async def test_an_empty_spool_gives_an_empty_batch(tmp_path: Path, count: int) -> None:
    spool, broker = await _filled(tmp_path, count), Broker()
    await _forwarder(spool, broker).forward_batch()
    assert await spool.batch() == []
    await spool.close()


@pytest.mark.parametrize("record", [
    Spooled("", "zenoti.h.any", "acme:1", {"tenant": "acme"}, b"{}", 1.0),  # any queue
    Spooled(EVENTS, "invoice.closed", "other:1", {"tenant": "acme"}, b"{}", 1.0),
    Spooled(EVENTS, "invoice.closed", "acme:1", {}, b"{}", 1.0),
    Spooled(EVENTS, "invoice.closed", "acme:1", {"tenant": "acme", "x-zenoti-replay-of": "x"},
            b"{}", 1.0),
], ids=["default-exchange", "another-tenants-id", "no-tenant", "a-header-never-written"])
async def test_a_record_this_ingress_would_never_write_is_kept_not_published(
    tmp_path: Path, record: Spooled,
) -> None:
    spool, broker = await _filled(tmp_path, 0), Broker()
    await spool.append(record)
    await spool.append(_record(2))
    with capture_logs() as logs:
        await _forwarder(spool, broker).forward_batch()
    assert [m for _, m, _ in broker.taken] == ["acme:2"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["spool.record_rejected"]
    assert len(list((tmp_path / "refused").iterdir())) == 1
    assert spool.empty
    await spool.close()


async def test_records_of_this_version_and_of_the_one_before_the_archive_are_all_forwarded(
    tmp_path: Path,
) -> None:
    spool, broker = await _filled(tmp_path, 0), Broker()
    exchanges = [INGRESS, PARKED, EVENTS, UNROUTED]  # the last two: spooled before the upgrade
    for n, exchange in enumerate(exchanges):
        await spool.append(Spooled(exchange, "invoice.closed", f"acme:{n}", {"tenant": "acme"},
                                   b"{}", 1.0))
    await _forwarder(spool, broker).forward_batch()
    assert [(x, m) for x, m, _ in broker.taken] == [
        (x, f"acme:{n}") for n, x in enumerate(exchanges)]
    assert spool.empty
    await spool.close()


async def test_an_unexpected_error_in_a_pass_is_said_and_the_forwarder_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool, broker = await _filled(tmp_path, 3), Broker()
    forwarded = spool.forwarded
    failures = [OSError(28, "No space left on device")]

    async def once_failing(*args: Any) -> None:
        if failures:
            raise failures.pop()
        await forwarded(*args)

    monkeypatch.setattr(spool, "forwarded", once_failing)
    stop = asyncio.Event()
    with capture_logs() as logs:
        running = asyncio.create_task(_forwarder(spool, broker).run(stop))
        async with asyncio.timeout(5):
            while not spool.empty:
                await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(running, 5)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["spool.forward_failed"]
    assert spool.empty
    await spool.close()


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("trace", "kept"), [
    ({"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
     {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}),
    ({"traceparent": TRACEPARENT + "-" + "x" * 400}, {}),
    ({"traceparent": TRACEPARENT.upper(), "tracestate": "vendor=1"}, {"tracestate": "vendor=1"}),
    ({"traceparent": 7}, {}),
    ({"traceparent": TRACEPARENT, "tracestate": "v=" + "x" * 600}, {"traceparent": TRACEPARENT}),
    ({"traceparent": TRACEPARENT, "tracestate": ["vendor=1"]}, {"traceparent": TRACEPARENT}),
])
async def test_a_malformed_trace_header_is_dropped_and_the_record_forwarded(
    tmp_path: Path, trace: dict[str, Any], kept: dict[str, Any],
) -> None:
    spool, broker = await _filled(tmp_path, 0), Broker()
    await spool.append(Spooled(INGRESS, "invoice.closed", "acme:1", {"tenant": "acme", **trace},
                               b"{}", 1.0))
    await _forwarder(spool, broker).forward_batch()
    assert broker.taken == [(INGRESS, "acme:1", {"tenant": "acme", **kept})]
    assert spool.empty and not (tmp_path / "refused").exists()
    await spool.close()

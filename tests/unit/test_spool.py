"""The spool on disk: what an append promises, what a restart recovers, what it refuses.

Real files in a temporary directory; no broker (the forwarder's tests run against one)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from processor.errors import ConfigError, SpoolFull, SpoolUnavailable
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.spool.segments import Position
from processor.spool.spool import Spool, Spooled


def _spool(directory: Path, *, max_bytes: int = 64 * 1024 * 1024,
           segment_bytes: int = 1024 * 1024, metrics: Metrics | None = None) -> Spool:
    return Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes,
                 metrics=metrics or Metrics(), log=get_logger(component="test"))


def _record(n: int, size: int = 200) -> Spooled:
    body = (f'{{"id": "{n}", "pad": "' + "x" * size + '"}').encode()
    return Spooled("zenoti.events", "invoice.closed", f"acme:{n}",
                   {"x-tenant": "acme", "x-attempt": n}, body, 1_700_000_000.0 + n)


async def _drain(spool: Spool) -> list[Spooled]:
    """Forward everything (as a forwarder would after the broker's confirms)."""
    out: list[Spooled] = []
    while records := await spool.batch():
        out.extend(record for _, record in records)
        await spool.forwarded(records[-1][0], len(records), records[-1][1])
    return out


async def test_appended_records_come_back_in_order_with_every_field(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    sent = [_record(n) for n in range(50)]
    for record in sent:
        await spool.append(record)
    assert (spool.entries, spool.empty) == (50, False)
    assert await _drain(spool) == sent
    assert (spool.entries, spool.bytes, spool.empty) == (0, 0, True)
    await spool.close()


async def test_a_restart_recovers_what_was_not_forwarded_and_only_that(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=4096)  # several segments
    await spool.open()
    sent = [_record(n) for n in range(60)]
    for record in sent:
        await spool.append(record)
    first = await spool.batch()
    await spool.forwarded(first[9][0], 10, first[9][1])
    await spool.close()

    again = _spool(tmp_path, segment_bytes=4096)
    await again.open()
    assert again.entries == 50
    assert again.bytes == sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    assert again.written.is_set()  # the forwarder starts on it at once
    assert await _drain(again) == sent[10:]
    assert sorted(p.name for p in tmp_path.glob("*.seg")) == []
    await again.close()


async def test_concurrent_appends_share_one_sync(tmp_path: Path) -> None:
    metrics = Metrics()
    spool = _spool(tmp_path, metrics=metrics)
    await spool.open()
    await asyncio.gather(*(spool.append(_record(n)) for n in range(200)))
    syncs = metrics.registry.get_sample_value("zenoti_events_spool_sync_seconds_count")
    assert syncs is not None and 1 <= syncs < 20
    assert metrics.registry.get_sample_value("zenoti_events_spool_writes_total") == 200
    assert spool.entries == 200
    await spool.close()


async def test_a_torn_tail_is_cut_off_and_the_spool_goes_on(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    for n in range(5):
        await spool.append(_record(n))
    await spool.close()
    (segment,) = tmp_path.glob("*.seg")
    whole = segment.stat().st_size
    with open(segment, "ab") as file:  # a crash in the middle of the sixth write
        file.write(_record(5).encode()[:-30])

    again = _spool(tmp_path)
    await again.open()
    assert again.entries == 5
    assert segment.stat().st_size == whole
    await again.append(_record(6))
    assert [r.message_id for r in await _drain(again)] == [f"acme:{n}" for n in (0, 1, 2, 3, 4, 6)]
    await again.close()


async def test_a_damaged_last_record_with_nothing_after_it_is_cut_as_a_torn_write(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    for n in range(3):
        await spool.append(_record(n))
    await spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[len(data) - 5] ^= 0xFF  # inside the third record's body: its CRC fails
    segment.write_bytes(bytes(data))

    again = _spool(tmp_path)
    with capture_logs() as logs:
        await again.open()
    assert again.entries == 2
    [said] = [e["detail"] for e in logs if e["event"] == "spool.repaired"]
    assert "torn last write" in said
    await again.close()


async def test_damage_before_intact_records_loses_only_the_damaged_one_and_keeps_the_file(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    for n in range(20):
        await spool.append(_record(n))
    await spool.close()
    (segment,) = tmp_path.glob("*.seg")
    original = segment.read_bytes()
    data = bytearray(original)
    data[len(_record(0).encode()) + 50] ^= 0xFF  # inside the second record
    segment.write_bytes(bytes(data))

    again = _spool(tmp_path)
    with capture_logs() as logs:
        await again.open()
    assert again.entries == 19
    assert [r.message_id for r in await _drain(again)] == [
        f"acme:{n}" for n in range(20) if n != 1]
    (kept,) = tmp_path.glob("*.corrupt")
    assert kept.read_bytes() == bytes(data)  # the original, for an operator
    assert any("damaged bytes" in e["detail"] for e in logs if e["event"] == "spool.repaired")
    await again.close()


async def test_an_unreadable_earlier_segment_keeps_its_intact_records(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=1024)
    await spool.open()
    for n in range(10):
        await spool.append(_record(n, size=400))
    await spool.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF  # the last record of a finished segment: damage, not a torn write
    first.write_bytes(bytes(data))

    again = _spool(tmp_path, segment_bytes=1024)
    with capture_logs() as logs:
        await again.open()
    assert [e["event"] for e in logs] == ["spool.repaired", "spool.recovered"]
    assert again.entries == 9
    assert len(await _drain(again)) == 9
    assert (again.entries, again.empty, again.bytes) == (0, True, 0)
    assert list(tmp_path.glob("*.corrupt"))
    await again.close()


async def test_bytes_follow_the_disk_through_many_segments_and_outages(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=256 * 1024, segment_bytes=16 * 1024)
    await spool.open()
    for _ in range(5):  # more than max_bytes spooled in all, never more at once
        for n in range(150):
            await spool.append(_record(n))
            on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
            assert spool.bytes == on_disk
        assert len(await _drain(spool)) == 150
        assert spool.bytes == 0 and not list(tmp_path.glob("*.seg"))
    await spool.close()


async def test_a_cursor_into_a_segment_that_is_gone_loses_nothing_after_it(
    tmp_path: Path,
) -> None:
    """A crash between deleting a forwarded segment and moving the cursor (or a power cut
    that kept the one but not the other): the cursor names a segment that is gone."""
    spool = _spool(tmp_path)
    await spool.open()
    await spool.append(_record(0))
    await _drain(spool)
    await spool.close()
    (tmp_path / "cursor").write_text("0 777\n")  # segment 0, deleted

    again = _spool(tmp_path)
    await again.open()
    for n in (1, 2, 3):
        await again.append(_record(n))
    assert [r.message_id for r in await _drain(again)] == ["acme:1", "acme:2", "acme:3"]
    await again.close()


async def test_a_disk_that_does_not_answer_in_time_is_a_503_and_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024 * 1024, segment_bytes=1024 * 1024,
                  metrics=Metrics(), log=get_logger(test="spool"), write_timeout=0.2)
    await spool.open()
    synced = os.fdatasync

    def slow(fd: int) -> None:
        time.sleep(0.6)
        synced(fd)

    monkeypatch.setattr(os, "fdatasync", slow)
    with pytest.raises(SpoolUnavailable, match=r"did not answer within 0\.2 s"):
        await spool.append(_record(0))
    await asyncio.sleep(0.1)
    assert not spool.accepting  # a write under way for longer than its bound
    monkeypatch.undo()
    deadline = time.monotonic() + 5
    while not spool.accepting and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert spool.accepting and spool.entries == 1  # it landed after all: kept, forwarded
    await spool.close()


async def test_a_second_process_cannot_open_the_same_directory(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    with pytest.raises(ConfigError, match="in use by another process"):
        await _spool(tmp_path).open()
    await spool.close()
    other = _spool(tmp_path)
    await other.open()  # released on close
    await other.close()


async def test_past_max_bytes_appends_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=64 * 1024)
    await spool.open()
    assert spool.accepting
    written = 0
    with pytest.raises(SpoolFull, match="spool is full"):
        while True:
            await spool.append(_record(written))
            written += 1
    assert spool.entries == written and spool.bytes <= 64 * 1024
    assert not spool.accepting  # /readyz says so too
    await _drain(spool)
    await spool.append(_record(99))  # room again once forwarded
    await spool.close()


async def test_a_failed_sync_answers_unavailable_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    await spool.append(_record(0))

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(SpoolUnavailable, match="could not write: Input/output error"):
        await spool.append(_record(1))
    monkeypatch.undo()
    assert spool.entries == 1
    await spool.append(_record(2))
    assert [r.message_id for r in await _drain(spool)] == ["acme:0", "acme:2"]
    await spool.close()


async def test_a_record_larger_than_a_read_chunk_is_read_whole(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    await spool.open()
    big = _record(1, size=5 * 1024 * 1024)
    await spool.append(big)
    await spool.append(_record(2))
    assert await _drain(spool) == [big, _record(2)]
    await spool.close()


async def test_the_oldest_age_is_exported_and_zero_when_empty(tmp_path: Path) -> None:
    metrics = Metrics()
    spool = _spool(tmp_path, metrics=metrics)
    await spool.open()
    age = "zenoti_events_spool_oldest_age_seconds"
    assert metrics.registry.get_sample_value(age) == 0.0
    await spool.append(_record(0))
    await asyncio.sleep(0.05)
    value = metrics.registry.get_sample_value(age)
    assert value is not None and 0.04 <= value < 5
    await _drain(spool)
    assert metrics.registry.get_sample_value(age) == 0.0
    assert metrics.registry.get_sample_value("zenoti_events_spool_forwards_total") == 1
    await spool.close()


def test_positions_order_by_segment_then_offset() -> None:
    assert Position(1, 900) < Position(2, 0) < Position(2, 1)


def test_an_empty_spool_dir_setting_means_no_spool(monkeypatch: pytest.MonkeyPatch) -> None:
    from processor.settings import Settings

    monkeypatch.setenv("ZENOTI_EVENTS_SPOOL_DIR", "")
    assert Settings().spool_dir is None
    monkeypatch.setenv("ZENOTI_EVENTS_SPOOL_DIR", "/var/spool/zenoti-events")
    assert Settings().spool_dir == Path("/var/spool/zenoti-events")


def test_up_keeps_its_spool_in_the_state_directory_one_per_ingress_port() -> None:
    from processor.dev.stack import spool_dir_for

    assert spool_dir_for(8080, {"XDG_STATE_HOME": "/s"}) == Path(
        "/s/zenoti-events/spool/ingress-8080")
    assert spool_dir_for(8081, {}).parts[-5:] == (
        ".local", "state", "zenoti-events", "spool", "ingress-8081")

"""The message contract: one typed reading of the headers every module writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processor import message as m
from processor.message import MessageMeta, bounded, header_text, output_id, scoped_key

WHEN = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def test_what_is_written_is_read_back() -> None:
    meta = MessageMeta(tenant="spa", event_type="Guest.Membership.Freeze", event_id="e1",
                       delivery_id="d1", received_at=WHEN, attempt=3, first_failure_at=WHEN,
                       reason="permanent", error="bad", parked_by="membership-freeze",
                       dead_at=WHEN + timedelta(seconds=5))
    assert MessageMeta.from_headers(meta.to_headers()) == meta


def test_absent_fields_and_the_first_attempt_are_not_written() -> None:
    assert MessageMeta(tenant="spa").to_headers() == {m.TENANT: "spa"}
    assert MessageMeta.from_headers({}) == MessageMeta()
    assert MessageMeta.from_headers(None).attempt == 1


def test_bytes_are_text_and_times_are_utc() -> None:
    headers = {m.TENANT: b"spa", m.RECEIVED_AT: "2026-12-02T11:30:00+02:00",
               m.DEAD_AT: datetime(2026, 12, 2, 9, 30)}  # naive: UTC
    meta = MessageMeta.from_headers(headers)
    assert meta.tenant == "spa"
    assert meta.received_at == WHEN
    assert meta.received_at.tzinfo == UTC
    assert meta.dead_at == WHEN


@pytest.mark.parametrize("attempt", [True, 0, -4, "3", 2.5, b"2", None])
def test_an_attempt_that_is_not_a_positive_int_reads_as_the_first(attempt: object) -> None:
    assert MessageMeta.from_headers({m.ATTEMPT: attempt}).attempt == 1


@pytest.mark.parametrize("value", ["yesterday", "", 12, b"\xff\xfe", "9999-12-31T23:59:59-23:59"])
def test_a_time_that_is_not_one_reads_as_absent(value: object) -> None:
    assert MessageMeta.from_headers({m.RECEIVED_AT: value}).received_at is None


@pytest.mark.parametrize("value", [5, True, ["spa"], {"a": 1}, 2.5])
def test_a_value_that_is_not_text_reads_as_absent(value: object) -> None:
    assert MessageMeta.from_headers({m.TENANT: value}).tenant is None


def test_undecodable_bytes_are_replaced_not_raised() -> None:
    assert MessageMeta.from_headers({m.EVENT_TYPE: b"Guest\xff"}).event_type == "Guest\ufffd"


def test_header_text_is_cut_and_made_encodable() -> None:
    assert header_text("short") == "short"
    long = header_text("x" * 5000)
    assert long is not None and len(long) == m.HEADER_CHARS + 3 and long.endswith("...")
    assert header_text("a\ud800b") == "a\\ud800b"
    assert header_text(None) is None


def test_ids_are_scoped_by_tenant_and_bounded() -> None:
    assert scoped_key("spa", "e1") == "spa:e1"
    assert output_id("spa", "e1", "freeze", "member") == "spa:e1:freeze:member"
    long = scoped_key("spa", "k" * 400)
    assert len(long.encode()) <= m.SHORTSTR_BYTES
    assert long != scoped_key("spa", "k" * 401)
    assert long == bounded("spa:" + "k" * 400)


def test_broker_headers_are_named_apart_from_ours() -> None:
    assert m.DEATHS in m.BROKER_HEADERS
    assert not any(name.startswith("x-zenoti-") for name in m.BROKER_HEADERS)

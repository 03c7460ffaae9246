"""Parsing the Zenoti envelope and normalising event types into routing keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from processor.errors import InvalidEnvelope
from processor.ingress.envelope import event_key, parse_envelope
from processor.message import MessageMeta
from processor.worker.decode import decode_event
from schemas.envelope import parse_zenoti_timestamp, routing_key

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"


def wrap(event_type: str, data_text: str) -> bytes:
    return f'{{"event_id": "e1", "event_type": "{event_type}", "data": {data_text}}}'.encode()


def test_the_reference_envelope_parses_with_its_seven_digit_timestamp() -> None:
    envelope = parse_envelope((SAMPLES / "envelope-reference.json").read_bytes())
    assert envelope.event_type == "Invoice.Closed"
    assert envelope.event_id == "622b5b33a961750e01db6510"
    assert envelope.event_timestamp == datetime(2022, 3, 11, 14, 22, 43, 384704, tzinfo=UTC)
    assert envelope.key == "622b5b33a961750e01db6510"


@pytest.mark.parametrize(
    ("event_type", "sample"),
    [
        ("Guestpass.redeemed", "guestpass-redemption.data.json"),
        ("Guest.Package.Redemption", "guest-package-redemption.data.json"),
        ("Guest.Membership.Freeze", "membership-freeze.data.json"),
        ("Guest.Membership.Unfreeze", "membership-unfreeze.data.json"),
        ("Guest.Membership.Cancelled", "membership-cancelled.data.json"),
        ("Guest.Package.StatusUpdate", "guest-package-status-update.data.json"),
    ],
)
def test_every_valid_sample_parses_inside_an_envelope(event_type: str, sample: str) -> None:
    text = (SAMPLES / sample).read_text()
    envelope = parse_envelope(wrap(event_type, text))
    assert envelope.data == json.loads(text)


@pytest.mark.parametrize(
    ("event_type", "raw"),
    [
        ("Guest.Package.Redemption", "guest-package-redemption.raw.txt"),
        ("Guest.Membership.Unfreeze", "membership-unfreeze.raw.txt"),
    ],
)
def test_a_vendor_sample_that_is_not_json_is_rejected_naming_that(
    event_type: str, raw: str
) -> None:
    with pytest.raises(InvalidEnvelope, match="not valid JSON"):
        parse_envelope(wrap(event_type, (SAMPLES / raw).read_text()))


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b'{"data": {}}', "event_type"),
        (b'{"event_type": "Guest.Created"}', "data"),
        (b'{"event_type": "", "data": {}}', "event_type"),
        (b'{"event_type": "Guest.Created", "data": []}', "data"),
        (b"[1, 2]", "JSON object"),
        (b'"just a string"', "JSON object"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
def test_bad_envelopes_are_rejected_naming_the_problem(body: bytes, names: str) -> None:
    with pytest.raises(InvalidEnvelope, match=names):
        parse_envelope(body)


def test_extra_envelope_fields_are_kept() -> None:
    envelope = parse_envelope(b'{"event_type": "X.Y", "data": {}, "new_field": 1}')
    assert envelope.model_extra == {"new_field": 1}


def test_the_key_falls_back_to_id_then_to_a_hash_of_the_body() -> None:
    with_id = b'{"id": "d1", "event_type": "X", "data": {}}'
    assert event_key(parse_envelope(with_id), with_id) == "d1"
    bare = b'{"event_type": "X", "data": {}}'
    key = event_key(parse_envelope(bare), bare)
    assert key.startswith("sha256:") and key == event_key(parse_envelope(bare), bare)


@pytest.mark.parametrize(
    ("event_type", "key"),
    [
        ("Guest.Membership.Freeze", "guest.membership.freeze"),
        ("Guestpass.redeemed", "guestpass.redeemed"),
        ("  Invoice.Closed ", "invoice.closed"),
        ("Weird Type#*", "weird_type__"),
        ("a..b.", "a.b"),
        ("...", "unknown"),
    ],
)
def test_routing_keys_are_lower_case_and_safe_for_topic_bindings(event_type: str, key: str) -> None:
    assert routing_key(event_type) == key


def test_timestamps_without_a_zone_stay_naive() -> None:
    assert parse_zenoti_timestamp("2022-03-11T08:00:00") == datetime(2022, 3, 11, 8)


def test_a_decoded_event_gives_its_whole_envelope_unknown_fields_included() -> None:
    body = (b'{"event_id": "e1", "event_type": "Guest.Membership.Freeze", "extra": {"a": 1},'
            b' "data": {"user_membership_id": "u"}}')
    event = decode_event(body, _AnyData, MessageMeta(tenant="default"), "default")
    assert event.envelope["extra"] == {"a": 1}
    assert event.envelope["data"] == {"user_membership_id": "u"}


class _AnyData(BaseModel):
    model_config = ConfigDict(extra="allow")

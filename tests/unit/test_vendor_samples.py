"""Zenoti's own webhook samples (docs.zenoti.com, verbatim; provenance in the samples README):
each is read the way a delivery is, through the envelope, then by the handler's schema."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from processor.ingress.envelope import parse_envelope
from schemas.envelope import Envelope
from schemas.webhooks import GuestpassRedeemedData, MembershipFreezeData, PackageStatusData

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
README = (SAMPLES / "README.md").read_text()
ENVELOPE = json.loads((SAMPLES / "envelope-reference.json").read_text())
# The vendor's samples that are not JSON, and the only fix each got: its trailing commas removed.
TRAILING_COMMA = re.compile(r",(\s*[}\]])")
RAW_AND_FIXED = [
    ("guest-package-redemption.raw.txt", "guest-package-redemption.data.json"),
    ("membership-unfreeze.raw.txt", "membership-unfreeze.data.json"),
]


def delivery(event_type: str, sample: str) -> Envelope:
    """The vendor's envelope sample carrying the vendor's ``data`` sample, as bytes on the wire."""
    data = json.loads((SAMPLES / sample).read_text())
    return parse_envelope(json.dumps({**ENVELOPE, "event_type": event_type, "data": data}).encode())


def test_the_vendor_envelope_sample_validates_as_it_is() -> None:
    envelope = Envelope.model_validate_json((SAMPLES / "envelope-reference.json").read_bytes())
    assert (envelope.id, envelope.event_id) == ("622b5b33a961750e01db6512",
                                                "622b5b33a961750e01db6510")
    assert (envelope.event_schema, envelope.event_resource) == ("v1", "Invoice")
    assert envelope.event_timestamp == datetime(2022, 3, 11, 14, 22, 43, 384704, tzinfo=UTC)
    assert envelope.data == {}


@pytest.mark.parametrize(
    ("event_type", "sample", "schema"),
    [
        ("Guest.Membership.Freeze", "membership-freeze.data.json", MembershipFreezeData),
        ("Guest.Package.StatusUpdate", "guest-package-status-update.data.json",
         PackageStatusData),
        ("Guestpass.redeemed", "guestpass-redemption.data.json", GuestpassRedeemedData),
    ],
)
def test_a_vendor_sample_validates_with_its_handlers_schema_inside_the_envelope(
    event_type: str, sample: str, schema: type[BaseModel]
) -> None:
    envelope = delivery(event_type, sample)
    data = schema.model_validate(envelope.data)
    assert data.model_dump(mode="json", exclude_none=True)  # something was read
    kept = data.model_extra or {}
    for key, value in envelope.data.items():  # nothing the vendor sent is lost
        assert key in type(data).model_fields or kept[key] == value


def test_the_vendor_freeze_sample_gives_the_handler_its_ids_and_freeze() -> None:
    data = MembershipFreezeData.model_validate(
        delivery("Guest.Membership.Freeze", "membership-freeze.data.json").data)
    assert data.user_membership_id == "01192853-a6b5-4ff4-b299-e36b9efe61ac"
    assert data.group_user_membership_id == "122df2ee-e82b-4c57-8262-ea57a39b6185"
    assert data.freeze is not None
    assert (data.freeze.type, data.freeze.fee, data.freeze.fee_type) == (2, 20, 2)
    assert data.freeze.end_date == datetime(2021, 12, 18, 20, 0)  # naive: center-local
    assert data.freeze.froze_by == "charan Owner"


def test_the_vendor_package_sample_names_its_invoice() -> None:
    data = PackageStatusData.model_validate(
        delivery("Guest.Package.StatusUpdate", "guest-package-status-update.data.json").data)
    assert data.invoice_id == "1ee272c2-bb54-4350-87d3-f32ac034aacc"
    assert data.user_package_id == "0cc3f6bd-680e-4953-bda6-9441565efb52"


@pytest.mark.parametrize(("raw", "fixed"), RAW_AND_FIXED)
def test_a_hand_fixed_sample_differs_from_the_vendors_only_by_its_trailing_commas(
    raw: str, fixed: str
) -> None:
    text = (SAMPLES / raw).read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert TRAILING_COMMA.sub(r"\1", text) == (SAMPLES / fixed).read_text()


def test_every_sample_names_its_source_in_the_readme() -> None:
    for path in SAMPLES.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in README, path.name

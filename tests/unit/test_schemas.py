"""Webhook data, Zenoti resources and enriched events: documented samples validate, gaps don't."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.enriched import (
    EnrichedGuest,
    GuestpassFacts,
    GuestpassRedeemed,
    MembershipFrozen,
    PackageStatusChanged,
)
from schemas.webhooks import GuestpassRedeemedData, MembershipFreezeData, PackageStatusData
from schemas.zenoti import ApiError, Guest, GuestMembership, PersonalInfo

SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"


def vendor_sample(name: str) -> dict[str, Any]:
    """A ``data`` sample of docs.zenoti.com, as the vendor shows it (samples README)."""
    sample: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return sample


FREEZE_SAMPLE = vendor_sample("membership-freeze.data.json")  # Guest Membership Freeze
GUESTPASS_SAMPLE = vendor_sample("guestpass-redemption.data.json")  # GuestPass Redemption
PACKAGE_SAMPLE = vendor_sample("guest-package-status-update.data.json")  # Status Update


def without(sample: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if k != key}


def test_the_documented_freeze_sample_validates() -> None:
    data = MembershipFreezeData.model_validate(FREEZE_SAMPLE)
    assert data.group_user_membership_id == "122df2ee-e82b-4c57-8262-ea57a39b6185"
    assert data.center.id == "a11f578a-1b81-4de0-8834-915f79e5362b"
    assert data.freeze is not None
    assert (data.freeze.type, data.freeze.fee) == (2, 20)
    assert data.freeze.start_date == datetime(2021, 12, 13, 20, 0)  # naive: center-local


def test_the_documented_guestpass_sample_validates() -> None:
    data = GuestpassRedeemedData.model_validate(GUESTPASS_SAMPLE)
    assert data.guest_id == "184772fc-58bf-4257-b932-8d91be2b5736"
    assert data.user_membership_id == "95f3175a-044d-47f2-9328-128a137b2ded"
    assert (data.total, data.balance, data.used) == (55, 23, 32)


def test_the_documented_package_sample_validates_and_names_its_invoice() -> None:
    data = PackageStatusData.model_validate(PACKAGE_SAMPLE)
    assert data.invoice_id == "1ee272c2-bb54-4350-87d3-f32ac034aacc"
    assert data.model_extra is not None and data.model_extra["expiration_days"] == 30


def test_a_package_event_falls_back_to_its_sale_invoice() -> None:
    sample = {**PACKAGE_SAMPLE, "invoice": None, "sale_invoice": {"id": "s-1", "no": "RR2"}}
    assert PackageStatusData.model_validate(sample).invoice_id == "s-1"


def test_a_package_event_without_any_invoice_id_is_refused() -> None:
    sample = {**PACKAGE_SAMPLE, "invoice": {"id": None}, "sale_invoice": {"id": "  "}}
    with pytest.raises(ValidationError, match=r"neither invoice\.id nor sale_invoice\.id"):
        PackageStatusData.model_validate(sample)


@pytest.mark.parametrize("key", ["user_membership_id", "group_user_membership_id", "center"])
def test_a_freeze_without_an_id_the_handler_needs_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        MembershipFreezeData.model_validate(without(FREEZE_SAMPLE, key))


@pytest.mark.parametrize("key", ["guest_id", "user_membership_id"])
def test_a_redemption_without_an_id_the_handler_needs_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        GuestpassRedeemedData.model_validate(without(GUESTPASS_SAMPLE, key))


def test_an_empty_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="guest_id"):
        GuestpassRedeemedData.model_validate({**GUESTPASS_SAMPLE, "guest_id": "  "})


def test_zenotis_nulls_are_tolerated_where_nothing_depends_on_them() -> None:
    nulls = {key: None for key in ("status", "recurrence_status", "expiry_date", "member_code",
                                   "next_collection_date", "freeze")}
    data = MembershipFreezeData.model_validate({**FREEZE_SAMPLE, **nulls})
    assert data.freeze is None


def test_a_guest_phone_may_be_an_object_or_a_string() -> None:
    as_object = PersonalInfo.model_validate({"mobile_phone": {"country_code": 1, "number": "55"}})
    as_string = PersonalInfo.model_validate({"mobile_phone": "+91 9885117036"})
    assert as_object.mobile_phone is not None and as_object.mobile_phone.number == "55"
    assert as_string.mobile_phone is not None and as_string.mobile_phone.number == "+91 9885117036"


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": 428, "message": "Invoice not found"}, 428, "Invoice not found"),
        ({"code": "505", "error_message": "Invalid guest_id"}, 505, "Invalid guest_id"),
        ({"StatusCode": 500, "Message": "Oops", "InternalMessage": "x"}, 500, "Oops"),
        ("Something went wrong", None, "Something went wrong"),
    ],
)
def test_api_error_reads_every_documented_shape(
    error: object, code: int | None, message: str
) -> None:
    parsed = ApiError.of(error)
    assert (parsed.code, parsed.message) == (code, message)


def test_enriched_events_name_their_routing_keys() -> None:
    assert MembershipFrozen.event_name == "guest.membership.frozen"
    assert GuestpassRedeemed.event_name == "guest.guestpass.redeemed"
    assert PackageStatusChanged.event_name == "guest.package.status_changed"


def test_the_guest_block_takes_the_guest_as_zenoti_serves_it() -> None:
    guest = Guest.model_validate({
        "id": "g-1", "code": "G1", "center_id": "c-1", "center_name": "Khammam",
        "personal_info": {"first_name": "Ada", "last_name": "Lovelace", "email": "a@x.io",
                          "mobile_phone": {"country_code": 1, "number": "5550100"}},
    })
    block = EnrichedGuest.from_guest(guest)
    assert (block.id, block.code, block.first_name, block.last_name) == ("g-1", "G1", "Ada",
                                                                          "Lovelace")
    assert block.home_center is not None and block.home_center.name == "Khammam"


def test_an_enriched_event_carries_the_zenoti_item_whole_in_json() -> None:
    membership = GuestMembership.model_validate({
        "user_membership_id": "m-1", "status": 1, "credit_balance": {"total": 5},
        "membership": {"id": "p-1", "guestpass_total": 55, "guestpass_balance": 23},
    })
    event = GuestpassRedeemed(
        tenant="acme", event_id="e-1", event_type="Guestpass.redeemed",
        handler="guestpass-redeemed", guest=EnrichedGuest(id="g-1"), membership=membership,
        guestpass=GuestpassFacts(total=55, balance=23, used=32),
    )
    out = json.loads(event.model_dump_json())
    assert out["membership"]["credit_balance"] == {"total": 5}
    assert out["membership"]["membership"]["guestpass_total"] == 55  # an int stays an int
    assert out["guestpass"]["balance"] == 23
    assert "event_name" not in out

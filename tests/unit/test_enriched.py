"""EnrichedEvent.about: the fields every enriched event carries, from the event it is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import BaseModel, ValidationError

from processor import Event
from schemas.enriched import EnrichedGuest, PackageStatusChanged, routing_key_of
from schemas.zenoti import GuestPackage

STAMP = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
GUEST = EnrichedGuest(id="g-1", first_name="Ada")
PACKAGE = GuestPackage(user_package_id="p-1")


class _Data(BaseModel):
    pass


def event(timestamp: datetime | None = STAMP) -> Event[_Data]:
    return Event(key="evt-1", event_type="Guest.Package.StatusUpdate", tenant="acme",
                 data=_Data(), event_timestamp=timestamp, delivery_id="d-1", attempt=2)


def test_about_carries_the_events_identity_the_handler_and_the_guest() -> None:
    made = PackageStatusChanged.about(event(), handler="package-status", guest=GUEST,
                                      package=PACKAGE, invoice_id="inv-1")
    assert type(made) is PackageStatusChanged
    assert (made.tenant, made.event_id, made.event_type, made.event_timestamp) == (
        "acme", "evt-1", "Guest.Package.StatusUpdate", STAMP)
    assert (made.handler, made.guest) == ("package-status", GUEST)
    assert (made.package, made.invoice_id, made.status) == (PACKAGE, "inv-1", None)


def test_about_equals_the_event_made_field_by_field() -> None:
    made = PackageStatusChanged.about(event(None), handler="h", guest=GUEST,
                                      package=PACKAGE, invoice_id="inv-1", status=3)
    assert made == PackageStatusChanged(
        tenant="acme", event_id="evt-1", event_type="Guest.Package.StatusUpdate",
        event_timestamp=None, handler="h", guest=GUEST, package=PACKAGE, invoice_id="inv-1",
        status=3)


def test_about_refuses_a_field_the_kind_does_not_have() -> None:
    with pytest.raises(TypeError, match="PackageStatusChanged has no field pakage"):
        PackageStatusChanged.about(event(), handler="h", guest=GUEST, pakage=PACKAGE,
                                   package=PACKAGE, invoice_id="inv-1")


def test_about_leaves_a_missing_or_wrong_value_to_the_models_validation() -> None:
    with pytest.raises(ValidationError, match="invoice_id"):
        PackageStatusChanged.about(event(), handler="h", guest=GUEST, package=PACKAGE)


def test_every_enriched_event_carries_its_schema_version_in_its_json() -> None:
    made = PackageStatusChanged.about(event(), handler="h", guest=GUEST, package=PACKAGE,
                                      invoice_id="inv-1")
    assert PackageStatusChanged.version == 1
    assert json.loads(made.model_dump_json())["schema_version"] == 1


def test_version_one_is_published_under_the_name_and_later_versions_under_a_suffix() -> None:
    class StatusChangedV2(PackageStatusChanged):
        version: ClassVar[int] = 2

    assert PackageStatusChanged.routing_key() == "guest.package.status_changed"
    assert routing_key_of(StatusChangedV2) == "guest.package.status_changed.v2"
    made = StatusChangedV2.about(event(), handler="h", guest=GUEST, package=PACKAGE,
                                 invoice_id="inv-1")
    assert made.model_dump()["schema_version"] == 2

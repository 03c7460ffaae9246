"""Outputs as CloudEvents: the AMQP protocol binding's rules (1.0.2, binary content mode) on
the application properties ``processor.contract.cloudevents`` makes, and the CloudEvents SDK
(2.x, ``cloudevents.core.bindings.amqp``, a dev dependency) reading them as a consumer would."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cloudevents.core.bindings import amqp  # the SDK (a dev dependency), read as a consumer would
from pydantic import BaseModel

from processor import Event
from processor.contract import cloudevents
from schemas.enriched import EnrichedGuest, PackageStatusChanged
from schemas.zenoti import GuestPackage

STAMP = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
RECEIVED = datetime(2026, 3, 1, 4, 0, 5, 250000, tzinfo=UTC)
MESSAGE_ID = "acme:evt-1:package-status:guest.package.status_changed"
# RFC 3986: an absolute URI starts with a scheme; RFC 3339: a date-time with its offset.
ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class _Data(BaseModel):
    pass


class Plain(BaseModel):  # an output model declaring no name nor version
    text: str


def event(stamp: datetime | None = STAMP, received: datetime | None = RECEIVED) -> Event[_Data]:
    return Event(key="evt-1", event_type="Guest.Package.StatusUpdate", tenant="acme",
                 data=_Data(), event_timestamp=stamp, received_at=received)


def output() -> PackageStatusChanged:
    return PackageStatusChanged.about(event(), handler="package-status",
                                      guest=EnrichedGuest(id="g-1"),
                                      package=GuestPackage(user_package_id="p-1"),
                                      invoice_id="inv-1")


def properties(**changes: Any) -> dict[str, str]:
    made = {"event": event(), "name": "guest.package.status_changed", "model": output(),
            "message_id": MESSAGE_ID, **changes}
    return cloudevents.headers(**made)


def test_every_attribute_is_an_application_property_with_the_cloud_events_prefix() -> None:
    found = properties()
    assert all(name.startswith("cloudEvents:") for name in found)
    assert all(isinstance(value, str) and value for value in found.values())
    assert {f"cloudEvents:{a}" for a in cloudevents.REQUIRED} <= found.keys()


def test_datacontenttype_is_not_a_property_in_binary_mode() -> None:
    # The binding maps it onto AMQP's content-type (application/json, the publisher's default).
    assert "cloudEvents:datacontenttype" not in properties()


def test_the_attributes_are_the_outputs_identity() -> None:
    found = properties()
    assert found["cloudEvents:specversion"] == "1.0"
    assert found["cloudEvents:id"] == MESSAGE_ID
    assert found["cloudEvents:source"] == "urn:zenoti-events:tenant:acme"
    assert found["cloudEvents:type"] == "guest.package.status_changed"
    assert found["cloudEvents:subject"] == "guests/g-1"
    assert found["cloudEvents:dataschema"] == (
        "urn:zenoti-events:schema:guest.package.status_changed:v1")


def test_source_and_dataschema_are_absolute_uris() -> None:
    found = properties()
    for name in ("cloudEvents:source", "cloudEvents:dataschema"):
        assert ABSOLUTE_URI.fullmatch(found[name]), name


def test_time_is_the_webhooks_timestamp_in_rfc_3339_utc() -> None:
    time = properties()["cloudEvents:time"]
    assert RFC3339.fullmatch(time)
    assert time == "2026-03-01T04:00:00Z"
    assert datetime.fromisoformat(time) == STAMP


def test_time_without_a_zoned_timestamp_is_when_the_ingress_received_it() -> None:
    naive = properties(event=event(stamp=datetime(2026, 3, 1, 9, 30)))
    assert naive["cloudEvents:time"] == "2026-03-01T04:00:05.250000Z"
    unknown = properties(event=event(stamp=None, received=None))
    assert RFC3339.fullmatch(unknown["cloudEvents:time"])


def test_a_model_without_name_and_version_is_typed_by_its_routing_key_without_dataschema() -> None:
    found = properties(name="example.plain", model=Plain(text="x"))
    assert found["cloudEvents:type"] == "example.plain"
    assert found["cloudEvents:subject"] == "events/evt-1"
    assert "cloudEvents:dataschema" not in found


def test_the_cloudevents_sdk_reads_an_output_without_our_code() -> None:
    body = output().model_dump_json().encode()
    message = amqp.AMQPMessage(properties={"content-type": "application/json"},
                               application_properties=properties(), application_data=body)
    read = amqp.from_binary_event(message)
    assert read.get_id() == MESSAGE_ID
    assert read.get_source() == "urn:zenoti-events:tenant:acme"
    assert read.get_type() == "guest.package.status_changed"
    assert read.get_time() == STAMP
    assert read.get_datacontenttype() == "application/json"
    assert read.get_data() == json.loads(body)


# RFC 3986: what a URI reference may hold (unreserved, sub-delims, gen-delims, and '%' only
# as the start of a %XX escape); a subject segment holds no '/', '?', '#', '[' or ']' of its own.
SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-F]{2})+")


def subject(key: str = "evt-1", guest: str | None = None) -> str:
    model: BaseModel = Plain(text="x") if guest is None else PackageStatusChanged.about(
        event(), handler="package-status", guest=EnrichedGuest(id=guest),
        package=GuestPackage(user_package_id="p-1"), invoice_id="inv-1")
    made = Event(key=key, event_type="Guest.Package.StatusUpdate", tenant="acme",
                 data=_Data(), event_timestamp=STAMP, received_at=RECEIVED)
    return cloudevents.headers(made, "example.plain", model, MESSAGE_ID)["cloudEvents:subject"]


def test_a_huge_event_key_makes_a_bounded_subject() -> None:
    key = "k" * 200_000
    found = subject(key)
    assert found.startswith("events/" + "k" * 100)
    assert len(found) <= len("events/") + 255 and SEGMENT.fullmatch(found.split("/", 1)[1])
    assert subject(key + "x") != found  # distinct keys, distinct subjects
    huge_guest = subject(guest="g" * 200_000)
    assert huge_guest.startswith("guests/g") and len(huge_guest) <= len("guests/") + 255


def test_control_and_non_ascii_characters_of_a_key_or_guest_id_are_percent_encoded() -> None:
    found = subject("evt\r\nX-Injected: 1/../é %41\x00")
    assert found == "events/evt%0D%0AX-Injected:%201%2F..%2F%C3%A9%20%2541%00"
    assert SEGMENT.fullmatch(found.removeprefix("events/"))
    assert subject(guest="g\r\n1/ü") == "guests/g%0D%0A1%2F%C3%BC"
    assert subject(guest="5f1c-aa") == "guests/5f1c-aa" and subject("evt-1") == "events/evt-1"


def test_a_timestamp_utc_cannot_hold_falls_back_to_when_it_was_received() -> None:
    for stamp in (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
                  datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))):
        assert properties(event=event(stamp=stamp))["cloudEvents:time"] == (
            "2026-03-01T04:00:05.250000Z")
        far = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
        assert RFC3339.fullmatch(
            properties(event=event(stamp=stamp, received=far))["cloudEvents:time"])

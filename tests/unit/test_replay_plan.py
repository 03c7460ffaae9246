"""What a replay selects and where it sends each delivery, without a broker."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime, timedelta

import pytest
from aio_pika.abc import AbstractIncomingMessage

from processor.broker.topology import Binding
from processor.message import MessageMeta
from processor.ops import archive_cli, replay
from schemas.envelope import routing_key

SINCE = datetime(2026, 12, 1, 8, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=6)
BINDINGS = [Binding("freeze", ("Guest.Membership.Freeze",)),
            Binding("audit", ("Guest.Membership.Freeze", "Guestpass.redeemed"))]


def meta(received: datetime | None, tenant: str = "default",
         event_type: str | None = "Guest.Membership.Freeze") -> MessageMeta:
    return MessageMeta(tenant=tenant, event_type=event_type, received_at=received)


@pytest.mark.parametrize(("received", "taken"), [
    (SINCE, True), (UNTIL - timedelta(microseconds=1), True),  # since included
    (UNTIL, False), (SINCE - timedelta(microseconds=1), False),  # until excluded
    (None, False),  # no receipt time: outside any window
])
def test_a_window_is_half_open_on_the_receipt_time(received: datetime | None,
                                                   taken: bool) -> None:
    assert replay.Window(SINCE, UNTIL).matches(meta(received)) is taken


def test_a_window_may_ask_for_one_tenant_and_one_type_in_any_case() -> None:
    window = replay.Window(SINCE, UNTIL, tenant="acme", event_type="guest.membership.FREEZE")
    assert window.matches(meta(SINCE, "acme"))
    assert not window.matches(meta(SINCE, "default"))
    assert not window.matches(meta(SINCE, "acme", "Guestpass.redeemed"))
    assert not window.matches(meta(SINCE, "acme", None))


class Archived:
    """The part of an archived message ``Plan.targets`` reads."""

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key


def _archived(key: str) -> AbstractIncomingMessage:
    return Archived(key)  # type: ignore[return-value]


def test_each_handler_that_takes_its_routing_key_gets_a_copy_or_only_those_named() -> None:
    every = replay.Plan(replay.Window(SINCE, UNTIL), BINDINGS)
    assert every.targets(meta(SINCE), _archived("guest.membership.freeze")) == ["freeze", "audit"]
    assert every.targets(meta(SINCE), _archived("guestpass.redeemed")) == ["audit"]
    assert every.targets(meta(SINCE), _archived("appointment.started")) == []
    named = replay.Plan(replay.Window(SINCE, UNTIL), BINDINGS, handlers=frozenset({"audit"}))
    assert named.targets(meta(SINCE), _archived("guest.membership.freeze")) == ["audit"]


def test_a_delivery_goes_where_it_went_live_not_where_its_cut_header_points() -> None:
    """The event_type header is cut at 1,024 characters; the key the ingress routed by is
    kept in the stream, and only it says where the delivery went live."""
    long = "Guest.Membership.Freeze" + "." * 1001 + "x"
    every = replay.Plan(replay.Window(SINCE, UNTIL), BINDINGS)
    assert every.targets(meta(SINCE, event_type=long), _archived(routing_key(long))) == []


@pytest.mark.parametrize("rate", ["inf", "nan", "1e300", "0", "-1"])
def test_the_rate_bound_cannot_be_lifted(rate: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        archive_cli._positive(rate)


@pytest.mark.parametrize("seconds", ["inf", "nan", "-1", "1e12"])
def test_waits_are_bounded(seconds: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        archive_cli._seconds(seconds)


def test_the_replayer_is_named_even_where_the_uid_has_no_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nobody() -> str:
        raise KeyError("getpwuid(): uid not found: 10001")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert archive_cli._who().startswith("uid-")

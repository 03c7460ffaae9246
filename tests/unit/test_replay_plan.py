"""What a replay selects and where it sends each delivery, without a broker."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta

import pytest
from aio_pika.abc import AbstractIncomingMessage

from processor.broker.topology import Binding
from processor.message import MessageMeta
from processor.ops import archive_cli, replay

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

    routing_key = "guestpass.redeemed"


def test_each_handler_that_takes_the_type_gets_a_copy_or_only_those_named() -> None:
    every = replay.Plan(replay.Window(SINCE, UNTIL), BINDINGS)
    message: AbstractIncomingMessage = Archived()  # type: ignore[assignment]
    assert every.targets(meta(SINCE), message) == ["freeze", "audit"]
    assert every.targets(meta(SINCE, event_type="Appointment.Started"), message) == []
    assert every.targets(meta(SINCE, event_type=None), message) == ["audit"]  # by its key
    named = replay.Plan(replay.Window(SINCE, UNTIL), BINDINGS, handlers=frozenset({"audit"}))
    assert named.targets(meta(SINCE), message) == ["audit"]


def test_the_replayer_is_named_even_where_the_uid_has_no_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nobody() -> str:
        raise KeyError("getpwuid(): uid not found: 10001")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert archive_cli._who().startswith("uid-")

"""handlers/_lookup: what each shared look-up answers and which ``ctx.zenoti`` calls it makes,
against an in-test ``ZenotiApi`` that records them."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from handlers import _lookup
from processor import Context, ResourceNotFound, ZenotiApi
from schemas.zenoti import CenterMember, Guest, GuestMembership, GuestPackage, Invoice

GUEST, OWNER, CENTER, ELSEWHERE = "g-1", "g-owner", "c-1", "c-2"
MEMBERSHIP = "1A2B3C4D-0000-4000-8000-00000000000A"


class RecordingApi:
    """A ``ZenotiApi`` over in-test answers; ``asked`` lists each method called, with its
    arguments. ``members`` maps a user membership id to its snapshot row and center."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []
        self.members: dict[str, tuple[CenterMember, str]] = {}
        self.invoices: dict[str, Invoice] = {}
        self.memberships: list[GuestMembership] = []
        self.packages: list[GuestPackage] = []

    @property
    def calls(self) -> int:
        return len(self.asked)

    async def get_invoice(self, invoice_id: str) -> Invoice:
        self.asked.append(("get_invoice", invoice_id))
        return self.invoices[invoice_id]

    async def get_guest(self, guest_id: str) -> Guest:
        self.asked.append(("get_guest", guest_id))
        return Guest(id=guest_id)

    async def guest(self, guest_id: str, center_id: str | None = None) -> Guest:
        self.asked.append(("guest", guest_id, center_id))
        return Guest(id=guest_id, center_id=center_id)

    async def known_guest(self, guest_id: str) -> Guest | None:
        self.asked.append(("known_guest", guest_id))
        return None

    async def member(
        self, user_membership_id: str, center_id: str | None
    ) -> tuple[CenterMember, str] | None:
        self.asked.append(("member", user_membership_id, center_id))
        return self.members.get(user_membership_id)

    async def list_memberships(self, guest_id: str, center_id: str) -> list[GuestMembership]:
        self.asked.append(("list_memberships", guest_id, center_id))
        return self.memberships

    async def list_packages(self, guest_id: str, center_id: str) -> list[GuestPackage]:
        self.asked.append(("list_packages", guest_id, center_id))
        return self.packages


async def _not_published(name: str, model: BaseModel) -> None:
    raise AssertionError("a look-up never publishes")


@pytest.fixture
def api() -> RecordingApi:
    return RecordingApi()


@pytest.fixture
def ctx(api: RecordingApi) -> Context:
    return Context(zenoti=api, log=structlog.get_logger(), publish=_not_published)


def row(owner: str | None) -> CenterMember:
    guest = None if owner is None else {"id": owner}
    return CenterMember.model_validate({"id": MEMBERSHIP, "guest": guest})


def test_the_recording_api_is_a_zenoti_api() -> None:
    assert isinstance(RecordingApi(), ZenotiApi)


def test_by_id_finds_the_first_item_whose_id_matches_case_blind() -> None:
    items = [("a", 1), (MEMBERSHIP.lower(), 2), (MEMBERSHIP, 3)]
    assert _lookup.by_id(items, MEMBERSHIP, lambda item: item[0]) == (MEMBERSHIP.lower(), 2)


def test_by_id_of_an_id_no_item_has_is_none() -> None:
    assert _lookup.by_id([("a", 1)], "b", lambda item: item[0]) is None


async def test_a_membership_no_snapshot_serves_is_left_to_point_look_ups(
    ctx: Context, api: RecordingApi
) -> None:
    assert await _lookup.located_member(ctx, MEMBERSHIP, CENTER) is None
    assert api.asked == [("member", MEMBERSHIP, CENTER)]


async def test_a_located_membership_comes_with_its_owner_asked_at_the_events_center(
    ctx: Context, api: RecordingApi
) -> None:
    api.members[MEMBERSHIP] = (row(OWNER), ELSEWHERE)
    located = await _lookup.located_member(ctx, MEMBERSHIP, CENTER)
    assert located is not None
    assert (located.member.id, located.center, located.guest.id) == (MEMBERSHIP, ELSEWHERE, OWNER)
    assert api.asked[1:] == [("guest", OWNER, CENTER)]


async def test_a_membership_located_without_a_center_has_its_guest_asked_at_the_rows_center(
    ctx: Context, api: RecordingApi
) -> None:
    api.members[MEMBERSHIP] = (row(OWNER), ELSEWHERE)
    located = await _lookup.located_member(ctx, MEMBERSHIP, None)
    assert located is not None
    assert api.asked == [("member", MEMBERSHIP, None), ("guest", OWNER, ELSEWHERE)]


async def test_a_guest_named_by_the_event_is_the_located_memberships_guest_not_its_owner(
    ctx: Context, api: RecordingApi
) -> None:
    api.members[MEMBERSHIP] = (row(OWNER), CENTER)
    located = await _lookup.located_member(ctx, MEMBERSHIP, None, guest_id=GUEST)
    assert located is not None and located.guest.id == GUEST
    assert api.asked[1:] == [("guest", GUEST, CENTER)]


async def test_a_located_row_naming_no_owner_is_left_to_point_look_ups(
    ctx: Context, api: RecordingApi
) -> None:
    api.members[MEMBERSHIP] = (row(None), CENTER)
    assert await _lookup.located_member(ctx, MEMBERSHIP, CENTER) is None
    assert [asked[0] for asked in api.asked] == ["member"]


async def test_an_invoice_leads_to_the_guest_it_names(ctx: Context, api: RecordingApi) -> None:
    api.invoices["inv-1"] = Invoice.model_validate({"id": "inv-1", "guest": {"id": GUEST}})
    buyer = await _lookup.invoice_guest(ctx, "inv-1", "package 'p-1'")
    assert buyer.id == GUEST
    assert api.asked == [("get_invoice", "inv-1")]


async def test_an_invoice_naming_no_guest_raises_resource_not_found_saying_what_it_sold(
    ctx: Context, api: RecordingApi
) -> None:
    api.invoices["inv-1"] = Invoice(id="inv-1")
    with pytest.raises(ResourceNotFound, match="invoice 'inv-1' of package 'p-1' names no guest"):
        await _lookup.invoice_guest(ctx, "inv-1", "package 'p-1'")


async def test_a_membership_at_a_center_is_matched_case_blind_in_the_guests_list_there(
    ctx: Context, api: RecordingApi
) -> None:
    api.memberships = [GuestMembership(user_membership_id="other"),
                       GuestMembership(user_membership_id=MEMBERSHIP.lower(), status=1)]
    found = await _lookup.membership_at(ctx, GUEST, CENTER, MEMBERSHIP)
    assert found is not None and found.status == 1
    assert api.asked == [("list_memberships", GUEST, CENTER)]


async def test_a_membership_not_listed_at_the_center_is_none(ctx: Context) -> None:
    assert await _lookup.membership_at(ctx, GUEST, CENTER, MEMBERSHIP) is None


async def test_a_package_at_a_center_is_matched_case_blind_in_the_guests_list_there(
    ctx: Context, api: RecordingApi
) -> None:
    api.packages = [GuestPackage(user_package_id="P-1", status=3)]
    found = await _lookup.package_at(ctx, GUEST, CENTER, "p-1")
    assert found is not None and found.status == 3
    assert api.asked == [("list_packages", GUEST, CENTER)]
    assert await _lookup.package_at(ctx, GUEST, CENTER, "p-2") is None


def test_a_membership_not_listed_is_a_resource_not_found_naming_guest_and_where() -> None:
    error = _lookup.membership_not_listed(MEMBERSHIP, GUEST, "centers ['c-1']")
    assert isinstance(error, ResourceNotFound)
    assert str(error) == (f"membership '{MEMBERSHIP}' is not among the memberships of guest "
                          "'g-1' at centers ['c-1']")

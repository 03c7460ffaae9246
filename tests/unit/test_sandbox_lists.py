"""The sandbox's center-wide lists over real HTTP: shapes, paging, filters, one call a page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from processor.dev.sandbox import Organisation, SandboxConfig, SandboxServer
from processor.dev.sandbox.lists import NOW
from processor.dev.sandbox.organisation import BASE_DATE
from schemas.zenoti import (
    CenterList,
    CenterMemberList,
    GuestList,
    MembershipChangeLog,
    SalesAccrualReport,
)

AUTH = {"Authorization": "apikey test-key"}
SEED = 13
ORG = Organisation.generate(SEED, guests=600, centers=2)
CENTER = next(iter(ORG.centers))

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(**config) as client``: a sandbox on a free port and a client of it."""

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        config = SandboxConfig(port=0, seed=SEED, guests=600, centers=2, **overrides)
        async with SandboxServer(config, ORG) as server, \
                httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
            yield client

    return running


@pytest.fixture
async def client(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve() as running:
        yield running


async def _all_pages(client: httpx.AsyncClient, path: str, key: str,
                     **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = (await client.get(path, params={**params, "page": page, "size": 100})).json()
        items += body[key]
        if len(body[key]) < 100:
            return items
        page += 1


async def test_a_centers_members_map_each_user_membership_to_its_guest(
    client: httpx.AsyncClient
) -> None:
    sold_here = ORG.members_of(CENTER)
    response = await client.get(f"/v1/centers/{CENTER}/members", params={"size": 100})
    listed = CenterMemberList.model_validate(response.json())
    assert response.status_code == 200
    assert listed.page_info is not None
    assert (listed.page_info.total, listed.page_info.page, listed.page_info.size) == (
        len(sold_here), 1, 100)
    assert listed.members is not None
    row = listed.members[0]
    first = sold_here[0]
    guest = ORG.guests[first.guest_id]
    assert (row.id, row.guest and row.guest.id, row.guest and row.guest.code) == (
        first.id, guest.id, guest.code)
    assert row.membership is not None and row.membership.code == first.plan.code
    assert row.sold_date == first.sold_date


async def test_every_member_is_listed_once_across_pages_and_each_page_is_a_call(
    client: httpx.AsyncClient
) -> None:
    rows = await _all_pages(client, f"/v1/centers/{CENTER}/members", "members")
    stats = (await client.get("/_sandbox/stats")).json()
    assert [r["id"] for r in rows] == [m.id for m in ORG.members_of(CENTER)]
    assert stats["by_endpoint"]["center_members"] == stats["calls"] == len(rows) // 100 + 1


async def test_a_page_is_ten_rows_unless_sized_and_never_above_a_hundred(
    client: httpx.AsyncClient
) -> None:
    default = (await client.get(f"/v1/centers/{CENTER}/members")).json()
    too_big = await client.get(f"/v1/centers/{CENTER}/members", params={"size": 101})
    past_end = (await client.get(f"/v1/centers/{CENTER}/members",
                                 params={"Page": 99, "Size": 100})).json()
    assert len(default["members"]) == 10
    assert default["page_info"]["size"] == 10
    assert too_big.status_code == 422
    assert too_big.json()["error"] == {"code": 422,
                                       "message": "You cannot request more than 100 items."}
    assert (past_end["members"], past_end["page_info"]["page"]) == ([], 99)


async def test_members_are_filtered_by_status_and_dates(client: httpx.AsyncClient) -> None:
    path = f"/v1/centers/{CENTER}/members"
    frozen = await _all_pages(client, path, "members", status="Frozen")
    active = await _all_pages(client, path, "members", status=1)
    changed_today = await _all_pages(client, path, "members",
                                     last_updated_date=f"{BASE_DATE:%Y-%m-%d}")
    recent = await _all_pages(client, path, "members", created_date="2026-01-01")
    members = ORG.members_of(CENTER)
    assert frozen == []  # a frozen membership keeps status 1; recurrence_status says frozen
    assert len(active) == len(members)
    assert {r["id"] for r in changed_today} == {m.id for m in members if m.frozen_at}
    assert {r["id"] for r in recent} == {m.id for m in members
                                        if m.sold_date.date().isoformat() >= "2026-01-01"}
    bad = await client.get(path, params={"status": "Sleeping"})
    assert bad.status_code == 400


async def test_statuses_can_be_served_as_names(serve: Serve) -> None:
    async with serve(status_names=True) as client:
        rows = await _all_pages(client, f"/v1/centers/{CENTER}/members", "members")
    frozen = {m.id for m in ORG.members_of(CENTER) if m.freeze}
    assert {r["recurrence_status"] for r in rows if r["id"] in frozen} == {"Frozen"}
    assert {r["status"] for r in rows} == {"Active"}


async def test_the_change_log_lists_todays_freezes_of_a_center_with_their_guests(
    client: httpx.AsyncClient
) -> None:
    frozen = [m for m in ORG.memberships if m.frozen_at and m.center_id == CENTER]
    at = frozen[0].frozen_at
    assert at is not None
    window = {"center_id": CENTER, "start_date": f"{at:%Y-%m-%dT%H:%M:%S}",
              "end_date": f"{at:%Y-%m-%d} 23:59:59"}
    rows = await _all_pages(client, "/v1/guests/memberships/change_log", "guest_memberships",
                            **window)
    log = MembershipChangeLog.model_validate({"guest_memberships": rows})
    expected = {m.id: m for m in frozen if m.frozen_at and m.frozen_at >= at}
    assert log.changes is not None
    assert {c.id: c.guest_id for c in log.changes} == {
        i: m.guest_id for i, m in expected.items()}
    assert {c.recurrence_status for c in log.changes} == {3}


async def test_the_change_log_defaults_to_the_last_seven_days_and_narrows_by_guest(
    client: httpx.AsyncClient
) -> None:
    week = await _all_pages(client, "/v1/guests/memberships/change_log", "guest_memberships")
    since = NOW.replace(hour=0, minute=0, second=0).toordinal() - 7
    expected = {m.id for m in ORG.memberships
                if m.frozen_at or m.sold_date.toordinal() >= since}
    assert {r["id"] for r in week} <= expected
    assert {r["id"] for r in week} >= {m.id for m in ORG.memberships if m.frozen_at}
    member = next(m for m in ORG.memberships if m.frozen_at)
    mine = await _all_pages(client, "/v1/guests/memberships/change_log", "guest_memberships",
                            guest_id=member.guest_id)
    assert member.id in {r["id"] for r in mine}
    assert {r["guest_id"] for r in mine} == {member.guest_id}


async def test_a_change_made_through_the_admin_route_shows_in_the_lists(
    client: httpx.AsyncClient
) -> None:
    member = next(m for m in ORG.members_of(CENTER) if not m.frozen_at)
    await client.post(f"/_sandbox/memberships/{member.id}",
                      json={"recurrence_status": 3, "changed_at": "2026-03-02T12:00:00"})
    rows = await _all_pages(client, "/v1/guests/memberships/change_log", "guest_memberships",
                            guest_id=member.guest_id, start_date="2026-03-02T11:59:00",
                            end_date="2026-03-02T12:01:00")
    listed = await _all_pages(client, f"/v1/centers/{CENTER}/members", "members")
    assert [(r["id"], r["recurrence_status"]) for r in rows] == [(member.id, 3)]
    assert next(r for r in listed if r["id"] == member.id)["recurrence_status"] == 3


async def test_the_guests_of_a_center_come_as_guest_details_with_page_info_spelt_so(
    client: httpx.AsyncClient
) -> None:
    response = await client.get("/v1/guests", params={"center_id": CENTER, "size": 100})
    body = response.json()
    listed = GuestList.model_validate(body)
    home = ORG.guests_at(CENTER)
    assert "page_Info" in body
    assert listed.page_info is not None and listed.page_info.total == len(home)
    assert listed.guests is not None
    assert [g.id for g in listed.guests] == [g.id for g in home[:100]]
    assert listed.guests[0].personal_info.email == home[0].email
    since = await client.get("/v1/guests", params={"center_id": CENTER,
                                                    "last_updated": "2026-01-01"})
    assert since.json()["page_Info"]["total"] == sum(
        g.created_date >= g.created_date.replace(2026, 1, 1) for g in home)
    missing = await client.get("/v1/guests")
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, 400)


async def test_the_sales_accrual_report_maps_a_days_invoices_to_their_guests(
    client: httpx.AsyncClient
) -> None:
    invoice = next(iter(ORG.invoices.values()))
    day = f"{invoice.invoice_date:%Y-%m-%d}"
    body = {"center_ids": [invoice.center_id], "start_date": f"{day} 00:00:00",
            "end_date": f"{day} 23:59:59"}
    response = await client.post("/v1/reports/sales/accrual_basis/flat_file",
                                 params={"page": 1, "size": 100}, json=body)
    report = SalesAccrualReport.model_validate(response.json())
    sold = [i for i in ORG.invoices.values() if i.center_id == invoice.center_id
            and f"{i.invoice_date:%Y-%m-%d}" == day]
    assert response.status_code == 200
    assert report.sales is not None
    assert {(r.invoice_id, r.guest_id) for r in report.sales} == {
        (i.id, i.guest_id) for i in sold}
    assert report.page_info is not None and report.page_info.total == len(report.sales)
    refused = await client.get("/v1/reports/sales/accrual_basis/flat_file")
    undated = await client.post("/v1/reports/sales/accrual_basis/flat_file", json={})
    assert (refused.status_code, undated.status_code) == (405, 400)


async def test_the_organisations_centers_are_listed_a_page_at_a_time(
    client: httpx.AsyncClient
) -> None:
    listed = CenterList.model_validate((await client.get("/v1/centers")).json())
    assert listed.centers is not None
    assert [c.id for c in listed.centers] == list(ORG.centers)


@pytest.mark.parametrize("path", ["/v1/centers/{id}/members", "/v1/guests?center_id={id}"])
async def test_an_unknown_center_is_zenotis_invalid_center(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path.format(id="0f9e1c1e-0000-4000-8000-000000000000"))
    assert (response.status_code, response.json()["error"]["code"]) == (404, 502)


async def test_an_undocumented_wrapper_key_can_be_chosen(serve: Serve) -> None:
    async with serve(list_keys={"center_members": "center_members"}) as client:
        body = (await client.get(f"/v1/centers/{CENTER}/members")).json()
    assert "members" not in body
    assert len(body["center_members"]) == 10

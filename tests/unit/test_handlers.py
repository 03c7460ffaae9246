"""The built-in handlers against a small in-test Zenoti served through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import BaseModel, SecretStr
from structlog.testing import capture_logs

from handlers.guestpass_redeemed import GuestpassRedeemed
from handlers.membership_freeze import MembershipFreeze
from handlers.package_status import PackageStatus
from processor.errors import ResourceNotFound
from processor.handler import Context, Event, Handler
from processor.metrics import Metrics
from processor.worker.plugins import check
from processor.zenoti.budget import TokenBucket
from processor.zenoti.client import ZenotiClient
from processor.zenoti.snapshot_store import MemorySnapshotStore, Meta, Page
from processor.zenoti.snapshots import Snapshots
from schemas.enriched import GuestpassRedeemed as GuestpassRedeemedEvent
from schemas.enriched import MembershipFrozen, PackageStatusChanged
from schemas.webhooks import GuestpassRedeemedData, MembershipFreezeData, PackageStatusData

GUEST = "184772fc-58bf-4257-b932-8d91be2b5736"
HOME = "a11f578a-1b81-4de0-8834-915f79e5362b"
OTHER_CENTER = "c0ffee00-0000-4000-8000-000000000001"
MEMBERSHIP = "01192853-a6b5-4ff4-b299-e36b9efe61ac"
MEMBERSHIP_SALE = "122df2ee-e82b-4c57-8262-ea57a39b6185"
PACKAGE = "0cc3f6bd-680e-4953-bda6-9441565efb52"
PACKAGE_SALE = "1ee272c2-bb54-4350-87d3-f32ac034aacc"
CLASS_BOOKING = "1db1854b-1ae3-401b-8302-1ef84de90ca4"
STAMP = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
FACIALS = {"id": "e19e0f53-74d3-46b7-bc87-bef8fbc185c8", "name": "Facials"}  # a webhook's package


class FakeZenoti:
    """Zenoti's four enrichment endpoints over dicts of records, in the sandbox's shapes.

    ``rendezvous`` names endpoints that must all be in flight before any answers: a handler
    that called them one after the other would stall, and the test fail on a timeout."""

    def __init__(self) -> None:
        self.invoices: dict[str, tuple[str, str]] = {
            MEMBERSHIP_SALE: (GUEST, HOME), PACKAGE_SALE: (GUEST, HOME),
            CLASS_BOOKING: (GUEST, HOME),
        }
        self.guests: dict[str, str] = {GUEST: HOME}
        self.memberships: dict[tuple[str, str], list[dict[str, Any]]] = {
            (GUEST, HOME): [membership_item("ffffffff-0000-4000-8000-000000000000"),
                            membership_item(MEMBERSHIP)],
        }
        self.packages: dict[tuple[str, str], list[dict[str, Any]]] = {
            (GUEST, HOME): [package_item(PACKAGE)],
        }
        self.requests: list[httpx.Request] = []
        self.rendezvous: set[str] = set()
        self._arrived: set[str] = set()
        self._all_arrived = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        endpoint, status, body = self.answer(request.url.path, request.url.params)
        if endpoint in self.rendezvous:
            self._arrived.add(endpoint)
            if self._arrived == self.rendezvous:
                self._all_arrived.set()
            await asyncio.wait_for(self._all_arrived.wait(), timeout=1.0)
        headers = {"RateLimit-Remaining": "50", "RateLimit-Reset": "30"}
        return httpx.Response(status, json=body, headers=headers)

    def answer(self, path: str, params: httpx.QueryParams) -> tuple[str, int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if parts[1] == "invoices":
            return "invoice", *self.invoice(parts[2])
        if len(parts) == 3:
            return "guest", *self.guest(parts[2])
        key = (parts[2], params["center_id"])
        if parts[3] == "memberships":
            return "memberships", 200, {"guest_memberships": self.memberships.get(key, []),
                                        "error": None}
        return "packages", 200, {"packages": self.packages.get(key, []),
                                 "page_info": {"total": 1, "page": 1, "size": 100}, "error": None}

    def invoice(self, invoice_id: str) -> tuple[int, dict[str, Any]]:
        if invoice_id not in self.invoices:
            return 404, {"invoice": None, "error": {"code": 428, "message": "Invoice not found"}}
        guest_id, center_id = self.invoices[invoice_id]
        guest = {"id": guest_id, "first_name": "Ada", "last_name": "Lovelace", "email": "a@x.io"}
        return 200, {"invoice": {"id": invoice_id, "invoice_number": "RR16675",
                                 "center_id": center_id, "guest": guest}, "error": None}

    def guest(self, guest_id: str) -> tuple[int, dict[str, Any]]:
        center_id = self.guests.get(guest_id)
        if center_id is None:
            return 404, {"error": {"code": 505, "message": "Invalid guest_id"}}
        info = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                "mobile_phone": {"country_code": 1, "number": "5550100"}}
        return 200, {"id": guest_id, "code": "G0042", "center_id": center_id,
                     "center_name": "Khammam", "personal_info": info, "error": None}

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def membership_item(user_membership_id: str) -> dict[str, Any]:
    return {
        "user_membership_id": user_membership_id, "group_user_membership_id": MEMBERSHIP_SALE,
        "status": 1, "recurrence_status": 3, "expiry_date": "2027-03-30T20:00:00",
        "member_code": "vvs356371", "next_collection_date": "2026-04-01T00:00:00",
        "center": {"id": HOME, "name": "Khammam"},
        "membership": {"id": "70019c0a-4347-4c3a-81b0-2a53b8704270", "name": "Cycling",
                       "code": "CYC", "type": 1, "guestpass_total": 55, "guestpass_balance": 23},
        "invoice": {"id": MEMBERSHIP_SALE, "no": "RR1"},
        "freeze": {"start_date": "2026-03-13T20:00:00", "end_date": "2026-03-18T20:00:00",
                   "type": 2, "fee": 20},
    }


def package_item(user_package_id: str) -> dict[str, Any]:
    return {
        "user_package_id": user_package_id, "status": 3, "user_package_state": 1,
        "invoice": {"id": PACKAGE_SALE, "no": "RR16675", "status": 4, "receipt_no": "RRR6059"},
        "package": {"id": "e19e0f53-74d3-46b7-bc87-bef8fbc185c8", "name": "Facials",
                    "code": "FAC", "type": 0},
        "date": {"start": "2026-03-02T09:55:25", "end": "2026-04-01T09:55:25",
                 "end_date_with_grace": "2026-04-26T09:55:25"},
        "center": {"id": HOME, "name": "Khammam"}, "services": [{"id": "s1", "balance": 4}],
    }


def freeze_data(**changes: Any) -> MembershipFreezeData:
    data = {"user_membership_id": MEMBERSHIP, "group_user_membership_id": MEMBERSHIP_SALE,
            "status": 1, "recurrence_status": 3, "center": {"id": HOME, "name": "Khammam"},
            "freeze": {"start_date": "2026-03-13T20:00:00", "end_date": "2026-03-18T20:00:00",
                       "type": 2, "fee": 20, "fee_type": 2, "comments": "paused",
                       "froze_by": "charan Owner"}}
    return MembershipFreezeData.model_validate({**data, **changes})


def guestpass_data(**changes: Any) -> GuestpassRedeemedData:
    data = {"id": "52923CDB-EA9B-420E-B787-1B2B4CE993AB", "date": "2026-03-01T09:15:00",
            "guestpass_id": "c7bc8109-6403-42dd-92ab-9aa22d84bee5", "guest_id": GUEST,
            "session_id": 81285, "invoice_id": CLASS_BOOKING,
            "user_membership_id": MEMBERSHIP, "total": 55, "balance": 23, "used": 32,
            "transferred": 0, "expired": 0, "frequency": "Any"}
    return GuestpassRedeemedData.model_validate({**data, **changes})


def package_data(**changes: Any) -> PackageStatusData:
    data = {"user_package_id": PACKAGE, "status": 3, "user_package_state": 1,
            "invoice": {"id": PACKAGE_SALE, "no": "RR16675", "status": 4},
            "sale_invoice": {"id": None, "no": None}, "center": {"id": HOME, "name": "Khammam"}}
    return PackageStatusData.model_validate({**data, **changes})


def event_of(handler: Handler, data: BaseModel) -> Event[Any]:
    return Event(key="evt-1", event_type=handler.event_types[0], tenant="acme", data=data,
                 event_timestamp=STAMP)


class Published:
    """The ``publish`` of a Context: remembers each routing key and model."""

    def __init__(self) -> None:
        self.events: list[tuple[str, BaseModel]] = []

    async def __call__(self, name: str, model: BaseModel) -> None:
        self.events.append((name, model))

    def only(self) -> tuple[str, BaseModel]:
        assert len(self.events) == 1
        return self.events[0]


@pytest.fixture
def zenoti() -> FakeZenoti:
    return FakeZenoti()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
async def ctx(zenoti: FakeZenoti, published: Published) -> AsyncIterator[Context]:
    transport = httpx.MockTransport(zenoti)
    async with httpx.AsyncClient(base_url="https://zenoti.test", transport=transport) as http:
        client = ZenotiClient(http, tenant="acme", api_key=SecretStr("k-123"),
                              budget=TokenBucket(60, 60.0), metrics=Metrics())
        yield Context(zenoti=client, log=structlog.get_logger(), publish=published)


async def no_page(kind: str, center: str, page: int, since: float | None) -> Page:
    raise AssertionError("the snapshots are loaded: no page is fetched")


@pytest.fixture
async def store() -> MemorySnapshotStore:
    """Complete members and guests snapshots of ``HOME``: the membership, owned by ``GUEST``."""
    store = MemorySnapshotStore()
    member: dict[str, Any] = {
        "id": MEMBERSHIP, "status": 1, "guest": {"id": GUEST, "code": "G0042"},
        "membership": {"id": "70019c0a-4347-4c3a-81b0-2a53b8704270", "name": "Cycling",
                       "code": "CYC", "type": 1},
    }
    guest: dict[str, Any] = {
        "id": GUEST, "code": "G0042", "center_id": HOME, "center_name": "Khammam",
        "personal_info": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    }
    now = time.time()
    for kind, row in (("members", member), ("guests", guest)):
        await store.add(kind, HOME, {row["id"]: row})
        await store.set_meta(kind, HOME, Meta(0, now, now))
    return store


@pytest.fixture
async def snapshot_ctx(
    zenoti: FakeZenoti, published: Published, store: MemorySnapshotStore
) -> AsyncIterator[Context]:
    """A context whose client answers from ``store``'s snapshots before asking ``zenoti``."""
    transport = httpx.MockTransport(zenoti)
    async with httpx.AsyncClient(base_url="https://zenoti.test", transport=transport) as http:
        snapshots = Snapshots(store, no_page, tenant="acme", metrics=Metrics(),
                              kinds=frozenset({"members", "guests"}), log=structlog.get_logger())
        client = ZenotiClient(http, tenant="acme", api_key=SecretStr("k-123"),
                              budget=TokenBucket(60, 60.0), metrics=Metrics(), snapshots=snapshots)
        yield Context(zenoti=client, log=structlog.get_logger(), publish=published)


@pytest.mark.parametrize("handler", [MembershipFreeze, GuestpassRedeemed, PackageStatus])
def test_each_handler_passes_the_plugin_checks(handler: type[Handler]) -> None:
    assert check(handler, handler.name) == []


async def test_membership_freeze_publishes_the_frozen_membership_with_its_guest(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), ctx)
    name, model = published.only()
    assert name == "guest.membership.frozen"
    assert isinstance(model, MembershipFrozen)
    assert (model.tenant, model.event_id, model.handler) == ("acme", "evt-1", "membership-freeze")
    assert (model.event_type, model.event_timestamp) == ("Guest.Membership.Freeze", STAMP)
    assert (model.guest.id, model.guest.first_name, model.guest.code) == (GUEST, "Ada", "G0042")
    assert model.guest.home_center is not None and model.guest.home_center.id == HOME
    assert model.membership.user_membership_id == MEMBERSHIP
    assert model.freeze is not None and (model.freeze.fee, model.freeze.type) == (20, 2)
    assert zenoti.paths()[0] == f"/v1/invoices/{MEMBERSHIP_SALE}"


async def test_membership_freeze_lists_memberships_at_the_webhooks_center(
    ctx: Context, zenoti: FakeZenoti
) -> None:
    await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), ctx)
    listing = [r for r in zenoti.requests if r.url.path.endswith("/memberships")]
    assert [r.url.params["center_id"] for r in listing] == [HOME]


async def test_membership_freeze_reads_guest_and_memberships_concurrently(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    zenoti.rendezvous = {"guest", "memberships"}
    await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), ctx)
    assert len(published.events) == 1


async def test_membership_freeze_matches_the_membership_id_case_blind(
    ctx: Context, published: Published
) -> None:
    data = freeze_data(user_membership_id=MEMBERSHIP.upper())
    await MembershipFreeze().handle(event_of(MembershipFreeze(), data), ctx)
    assert published.only()[0] == "guest.membership.frozen"


async def test_membership_freeze_of_an_unlisted_membership_raises_resource_not_found(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    zenoti.memberships[(GUEST, HOME)] = []
    with pytest.raises(ResourceNotFound, match=f"membership '{MEMBERSHIP}' is not among"):
        await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), ctx)
    assert published.events == []


async def test_membership_freeze_of_an_unknown_sale_invoice_raises_resource_not_found(
    ctx: Context, zenoti: FakeZenoti
) -> None:
    del zenoti.invoices[MEMBERSHIP_SALE]
    with pytest.raises(ResourceNotFound, match=f"invoice '{MEMBERSHIP_SALE}'"):
        await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), ctx)


async def test_guestpass_redeemed_publishes_the_pass_counts_and_the_allowance(
    ctx: Context, published: Published
) -> None:
    await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    name, model = published.only()
    assert name == "guest.guestpass.redeemed"
    assert isinstance(model, GuestpassRedeemedEvent)
    assert model.handler == "guestpass-redeemed"
    assert (model.guestpass.total, model.guestpass.balance, model.guestpass.used) == (55, 23, 32)
    assert model.guestpass.session_id == 81285
    allowance = model.membership.membership
    assert allowance is not None
    assert (allowance.guestpass_total, allowance.guestpass_balance) == (55, 23)
    assert model.guest.email == "ada@example.com"


async def test_guestpass_redeemed_reads_the_guest_then_lists_at_their_home_center(
    ctx: Context, zenoti: FakeZenoti
) -> None:
    await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    assert zenoti.paths() == [f"/v1/guests/{GUEST}", f"/v1/guests/{GUEST}/memberships"]
    assert zenoti.requests[1].url.params["center_id"] == HOME


async def test_guestpass_redeemed_for_an_unknown_guest_raises_resource_not_found(
    ctx: Context,
) -> None:
    data = guestpass_data(guest_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ResourceNotFound, match="Invalid guest_id"):
        await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), data), ctx)


async def test_guestpass_redeemed_finds_a_membership_sold_at_another_center(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    zenoti.memberships[(GUEST, OTHER_CENTER)] = zenoti.memberships.pop((GUEST, HOME))
    zenoti.invoices[CLASS_BOOKING] = (GUEST, OTHER_CENTER)
    with capture_logs() as logs:
        await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    assert zenoti.paths() == [f"/v1/guests/{GUEST}", f"/v1/guests/{GUEST}/memberships",
                              f"/v1/invoices/{CLASS_BOOKING}", f"/v1/guests/{GUEST}/memberships"]
    assert zenoti.requests[3].url.params["center_id"] == OTHER_CENTER
    assert len(published.events) == 1
    assert logs[0]["calls"] == 4


async def test_guestpass_redeemed_of_an_unlisted_membership_raises_resource_not_found(
    ctx: Context, zenoti: FakeZenoti
) -> None:
    zenoti.memberships[(GUEST, HOME)] = [membership_item("ffffffff-0000-4000-8000-00000000000f")]
    with pytest.raises(ResourceNotFound, match=f"'{MEMBERSHIP}'.*centers \\['{HOME}'\\]"):
        await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    assert zenoti.paths()[-1] == f"/v1/invoices/{CLASS_BOOKING}"  # same center: not listed twice


async def test_guestpass_redeemed_for_a_guest_without_a_home_center_uses_the_invoices(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    zenoti.guests[GUEST] = ""
    await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    after_guest = [f"/v1/invoices/{CLASS_BOOKING}", f"/v1/guests/{GUEST}/memberships"]
    assert zenoti.paths()[1:] == after_guest
    assert len(published.events) == 1


async def test_package_status_publishes_the_package_with_its_guest(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    await PackageStatus().handle(event_of(PackageStatus(), package_data()), ctx)
    name, model = published.only()
    assert name == "guest.package.status_changed"
    assert isinstance(model, PackageStatusChanged)
    assert (model.status, model.user_package_state, model.invoice_id) == (3, 1, PACKAGE_SALE)
    assert model.package.user_package_id == PACKAGE
    assert model.package.model_dump()["services"] == [{"id": "s1", "balance": 4}]
    assert model.guest.id == GUEST
    assert zenoti.paths()[0] == f"/v1/invoices/{PACKAGE_SALE}"


async def test_package_status_falls_back_to_the_sale_invoice(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    data = package_data(invoice={"id": None}, sale_invoice={"id": PACKAGE_SALE, "no": "RR2"})
    await PackageStatus().handle(event_of(PackageStatus(), data), ctx)
    assert zenoti.paths()[0] == f"/v1/invoices/{PACKAGE_SALE}"
    assert len(published.events) == 1


async def test_package_status_reads_guest_and_packages_concurrently(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    zenoti.rendezvous = {"guest", "packages"}
    await PackageStatus().handle(event_of(PackageStatus(), package_data()), ctx)
    assert len(published.events) == 1


async def test_package_status_of_a_package_at_another_center_raises_resource_not_found(
    ctx: Context, published: Published
) -> None:
    data = package_data(center={"id": OTHER_CENTER})
    with pytest.raises(ResourceNotFound, match=f"package '{PACKAGE}'.*center '{OTHER_CENTER}'"):
        await PackageStatus().handle(event_of(PackageStatus(), data), ctx)
    assert published.events == []


@pytest.mark.parametrize(
    ("handler", "data"),
    [(MembershipFreeze(), freeze_data()), (GuestpassRedeemed(), guestpass_data()),
     (PackageStatus(), package_data())],
)
async def test_each_handler_logs_one_info_line_per_event(
    ctx: Context, handler: Handler, data: BaseModel
) -> None:
    with capture_logs() as logs:
        await handler.handle(event_of(handler, data), ctx)
    infos = [entry for entry in logs if entry["log_level"] == "info"]
    assert [entry["event"] for entry in infos] == ["event.enriched"]
    assert infos[0]["guest_id"] == GUEST


async def test_each_handler_logs_the_calls_of_its_own_event_not_the_clients_running_total(
    ctx: Context, zenoti: FakeZenoti
) -> None:
    with capture_logs() as logs:
        await PackageStatus().handle(event_of(PackageStatus(), package_data(package=FACIALS)), ctx)
        await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()), ctx)
    assert len(zenoti.requests) == 3
    assert [entry["calls"] for entry in logs] == [1, 2]


async def test_membership_freeze_answers_from_the_centers_snapshots_without_a_call(
    snapshot_ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    with capture_logs() as logs:
        await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), snapshot_ctx)
    model = published.only()[1]
    assert isinstance(model, MembershipFrozen)
    assert (model.guest.id, model.guest.code, model.guest.email) == (GUEST, "G0042",
                                                                     "ada@example.com")
    plan = model.membership.membership
    assert plan is not None and (plan.name, plan.code) == ("Cycling", "CYC")
    assert model.membership.freeze == freeze_data().freeze  # the webhook's, not the list's
    assert zenoti.requests == []
    assert logs[0]["calls"] == 0


async def test_membership_freeze_of_a_row_naming_no_owner_finds_the_guest_through_the_invoice(
    snapshot_ctx: Context, zenoti: FakeZenoti, store: MemorySnapshotStore,
    published: Published
) -> None:
    await store.add("members", HOME, {MEMBERSHIP: {"id": MEMBERSHIP, "status": 1}})
    await MembershipFreeze().handle(event_of(MembershipFreeze(), freeze_data()), snapshot_ctx)
    assert zenoti.paths() == [f"/v1/invoices/{MEMBERSHIP_SALE}", f"/v1/guests/{GUEST}",
                              f"/v1/guests/{GUEST}/memberships"]
    assert len(published.events) == 1


async def test_guestpass_redeemed_answers_from_the_snapshots_with_the_webhooks_counts(
    snapshot_ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    await GuestpassRedeemed().handle(event_of(GuestpassRedeemed(), guestpass_data()),
                                     snapshot_ctx)
    model = published.only()[1]
    assert isinstance(model, GuestpassRedeemedEvent)
    assert model.guest.email == "ada@example.com"
    assert model.membership.center is not None and model.membership.center.id == HOME
    plan = model.membership.membership
    assert plan is not None and (plan.name, plan.guestpass_balance) == ("Cycling", 23)
    assert zenoti.requests == []


async def test_package_status_takes_the_guest_from_a_loaded_snapshot_after_the_invoice(
    snapshot_ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    data = package_data(package=FACIALS)
    await PackageStatus().handle(event_of(PackageStatus(), data), snapshot_ctx)
    model = published.only()[1]
    assert isinstance(model, PackageStatusChanged)
    assert (model.guest.code, model.guest.email) == ("G0042", "ada@example.com")
    assert model.package.package is not None and model.package.package.name == "Facials"
    assert zenoti.paths() == [f"/v1/invoices/{PACKAGE_SALE}"]


async def test_package_status_names_the_invoices_guest_when_no_snapshot_has_them(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    await PackageStatus().handle(event_of(PackageStatus(), package_data(package=FACIALS)), ctx)
    model = published.only()[1]
    assert isinstance(model, PackageStatusChanged)
    assert (model.guest.id, model.guest.email, model.guest.home_center) == (GUEST, "a@x.io", None)
    assert zenoti.paths() == [f"/v1/invoices/{PACKAGE_SALE}"]


def readme_handler() -> type[Handler]:
    """The handler class of README's "Writing a handler" example, made by running it."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Writing a handler", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "README's handler section has no python example"
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(found.group(1), "README.md", "exec"), namespace)
    handler: type[Handler] = namespace["EchoHandler"]
    return handler


async def test_the_readme_handler_example_passes_the_checks_and_handles_an_event(
    ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    handler = readme_handler()
    assert check(handler, "example-echo") == []
    instance = handler()
    data = handler.schema.model_validate({"guest_id": GUEST})
    event = Event(key="evt-1", event_type="Example.Echo", tenant="acme", data=data)
    with capture_logs() as logs:
        await instance.handle(event, ctx)
    name, model = published.only()
    assert (name, model.model_dump()) == ("example.echoed",
                                          {"event_id": "evt-1", "email": "ada@example.com"})
    assert zenoti.paths() == [f"/v1/guests/{GUEST}"]
    assert logs[0]["calls"] == 1

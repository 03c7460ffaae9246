"""Simulated Zenoti deliveries: envelopes about sandbox data, signed, paced and resent."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from processor.dev.deliveries import (
    FREEZE,
    GUESTPASS,
    KNOWN_TYPES,
    PACKAGE_STATUS,
    UNKNOWN_TYPES,
    build_deliveries,
)
from processor.dev.sandbox import Organisation, SandboxConfig, SandboxServer
from processor.dev.sandbox.day import parse_mix, plan_day
from processor.dev.simulator import SimulatorConfig, SimulatorReport, run_simulator
from processor.errors import ConfigError
from processor.ingress.signature import HEADER, verify
from schemas.envelope import Envelope

SEED = 5
ORG = Organisation.generate(SEED, guests=60)
SECRET = "whsec-test"


@dataclass
class Receiver:
    """A tiny ingress: records every request; ``answer`` picks the status of each."""

    answer: Callable[[int], int] = lambda attempt: 202
    delay: float = 0.0
    received: list[tuple[bytes, str | None]] = field(default_factory=list)
    attempts: dict[bytes, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        self.received.append((body, request.headers.get(HEADER)))
        self.attempts[body] = self.attempts.get(body, 0) + 1
        return web.Response(status=self.answer(self.attempts[body]))


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recorder = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/zenoti", recorder.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield recorder, f"http://{host}:{port}/webhooks/zenoti"
    await runner.cleanup()


def _config(url: str, **overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {"url": url, "secret": SECRET, "count": 20, "rate": 0, "seed": SEED,
                              "guests": 60, "concurrency": 4, "backoff": 0.001}
    return SimulatorConfig(**(values | overrides))


def test_the_same_seed_builds_the_same_bytes() -> None:
    first = build_deliveries(ORG, 30, seed=3, unknown_ratio=0.2)
    assert first == build_deliveries(ORG, 30, seed=3, unknown_ratio=0.2)
    assert first != build_deliveries(ORG, 30, seed=4, unknown_ratio=0.2)


def test_envelopes_parse_and_look_like_zenotis() -> None:
    deliveries = build_deliveries(ORG, 200, seed=1, unknown_ratio=0.05)
    assert len({d.event_id for d in deliveries}) == 200
    for delivery in deliveries:
        envelope = Envelope.model_validate_json(delivery.body)
        raw = json.loads(delivery.body)
        assert envelope.event_id == delivery.event_id
        assert envelope.event_type == delivery.event_type
        assert envelope.event_schema == "v1"
        assert re.fullmatch(r"[0-9a-f]{24}", raw["id"])
        assert int(raw["id"], 16) - int(raw["event_id"], 16) == 2
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", raw["event_timestamp"])
    assert {d.event_type for d in deliveries} >= set(KNOWN_TYPES)


def test_unknown_ratio_picks_the_share_of_unhandled_event_types() -> None:
    assert {d.event_type for d in build_deliveries(ORG, 30, 1, 1.0)} <= set(UNKNOWN_TYPES)
    assert {d.event_type for d in build_deliveries(ORG, 30, 1, 0.0)} <= set(KNOWN_TYPES)


def _data_of(event_type: str) -> list[dict[str, Any]]:
    deliveries = build_deliveries(ORG, 150, seed=2, unknown_ratio=0.0)
    return [json.loads(d.body)["data"] for d in deliveries if d.event_type == event_type]


def test_freezes_name_frozen_memberships_through_their_sale_invoice() -> None:
    memberships = {m.id: m for m in ORG.memberships}
    for data in _data_of(FREEZE):
        membership = memberships[data["user_membership_id"]]
        assert "guest_id" not in data
        assert ORG.invoices[data["group_user_membership_id"]].guest_id == membership.guest_id
        assert data["center"]["id"] == membership.center_id
        assert (data["status"], data["recurrence_status"], data["freeze"]["type"]) == (1, 3, 2)


def test_guestpass_redemptions_name_the_member_and_a_booking_invoice() -> None:
    memberships = {m.id: m for m in ORG.memberships}
    for data in _data_of(GUESTPASS):
        membership = memberships[data["user_membership_id"]]
        assert data["guest_id"] == membership.guest_id
        assert ORG.invoices[data["invoice_id"]].guest_id == membership.guest_id
        assert data["id"] == data["id"].upper()
        home = ORG.guests[data["guest_id"]].center_id
        assert membership in ORG.memberships_of(data["guest_id"], home)
        assert data["used"] + data["balance"] == data["total"] == membership.guestpass_total


def test_package_updates_name_packages_through_their_sale_invoice() -> None:
    packages = {p.id: p for p in ORG.packages}
    for data in _data_of(PACKAGE_STATUS):
        package = packages[data["user_package_id"]]
        assert ORG.invoices[data["invoice"]["id"]].guest_id == package.guest_id
        assert data["sale_invoice"]["id"] == package.invoice_id
        assert data["schedule"] == {"completed_schedules": None, "next_schedule_date": None}


async def test_a_freeze_can_be_enriched_from_the_sandbox() -> None:
    data = _data_of(FREEZE)[0]
    config = SandboxConfig(port=0, seed=SEED, guests=60)
    async with SandboxServer(config) as server, httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": "apikey k"}, verify=False) as api:
        invoice = (await api.get(f"/v1/invoices/{data['group_user_membership_id']}")).json()
        guest_id = invoice["invoice"]["guest"]["id"]
        listed = (await api.get(f"/v1/guests/{guest_id}/memberships",
                                params={"center_id": data["center"]["id"]})).json()
    ids = [m["user_membership_id"] for m in listed["guest_memberships"]]
    assert data["user_membership_id"] in ids


async def test_deliveries_arrive_signed_and_parse(receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    report = await run_simulator(_config(url))
    assert (report.sent, report.accepted_2xx, report.resends) == (20, 20, 0)
    assert report.by_status == {"202": 20}
    assert len(recorder.received) == 20
    for body, signature in recorder.received:
        verify(body, signature, [SecretStr(SECRET)])
        Envelope.model_validate_json(body)


async def test_without_a_secret_deliveries_are_unsigned(receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    await run_simulator(_config(url, secret=None, count=3))
    assert [signature for _, signature in recorder.received] == [None] * 3


async def test_a_refused_delivery_is_resent_until_accepted(
    receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.answer = lambda attempt: 503 if attempt < 3 else 202
    report = await run_simulator(_config(url, count=5))
    assert (report.accepted_2xx, report.resends) == (5, 10)
    assert report.by_status == {"503": 10, "202": 5}


async def test_resends_stop_after_max_resends(receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    recorder.answer = lambda attempt: 500
    report = await run_simulator(_config(url, count=4, max_resends=2))
    assert (report.sent, report.accepted_2xx, report.failed) == (4, 0, 4)
    assert set(recorder.attempts.values()) == {3}
    assert report.by_status == {"500": 12}


async def test_connection_errors_are_counted_and_resent() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    config = _config("http://ingress.invalid/webhooks/zenoti", count=3, max_resends=1)
    report = await run_simulator(config, transport=httpx.MockTransport(refuse))
    assert report.by_status == {"error": 6}
    assert report.failed == 3


async def test_sending_is_paced_and_bounded(receiver: tuple[Receiver, str]) -> None:
    recorder, url = receiver
    recorder.delay = 0.02
    report = await run_simulator(_config(url, count=12, rate=100.0, concurrency=2))
    assert report.seconds >= 0.1
    assert recorder.max_in_flight <= 2
    assert report.accepted_2xx == 12


def test_a_bad_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        _config("http://x", concurrency=0).check()
    with pytest.raises(ConfigError, match="url"):
        _config("ftp://x").check()


async def test_with_day_the_realistic_day_of_the_organisation_is_sent(
    receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    await run_simulator(_config(url, count=30, day=True, mix="package"))
    expected = plan_day(ORG, 30, SEED, parse_mix("package")).deliveries
    assert sorted(body for body, _ in recorder.received) == sorted(d.body for d in expected)


async def test_a_shared_report_adds_up_runs_and_names_failed_deliveries(
    receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.answer = lambda attempt: 500
    report = SimulatorReport()
    deliveries = build_deliveries(ORG, 4, seed=1, unknown_ratio=0.0)
    await run_simulator(_config(url, max_resends=0), deliveries=deliveries[:2], report=report)
    await run_simulator(_config(url, max_resends=0), deliveries=deliveries[2:], report=report)
    assert (report.sent, report.failed, report.by_status) == (4, 4, {"500": 4})
    assert sorted(report.failed_ids) == sorted(d.event_id for d in deliveries)


def test_a_bad_mix_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        _config("http://x", day=True, mix="spa=1").check()

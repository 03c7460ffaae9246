"""The sandbox over real HTTP: Zenoti's endpoints, auth, rate limit, faults and stats."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from processor.dev.sandbox import Organisation, SandboxConfig, SandboxServer, run_sandbox
from processor.errors import ConfigError

AUTH = {"Authorization": "apikey test-key"}
SEED = 11
ORG = Organisation.generate(SEED, guests=40)

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(**config) as client``: a sandbox on a free port and a client of it."""

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        config = SandboxConfig(port=0, seed=SEED, guests=40, **overrides)
        async with SandboxServer(config, ORG) as server, \
                httpx.AsyncClient(base_url=server.url, headers=AUTH, verify=False) as client:
            yield client

    return running


@pytest.fixture
async def client(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve() as running:
        yield running


async def test_an_invoice_is_served_in_its_wrapper(client: httpx.AsyncClient) -> None:
    membership = ORG.memberships[0]
    response = await client.get(f"/v1/invoices/{membership.invoice_id}",
                                params={"expand": "InvoiceItems"})
    assert response.status_code == 200
    body = response.json()
    assert body["error"] is None
    invoice = body["invoice"]
    assert invoice["id"] == membership.invoice_id
    assert invoice["guest"]["id"] == membership.guest_id
    assert invoice["is_closed"] is True
    assert invoice["total_price"]["currency_id"] == 148
    assert set(invoice["total_price"]) == {"currency_id", "net_price", "tax", "sum_total"}
    assert invoice["invoice_items"][0]["name"] == membership.plan.name


async def test_a_guest_is_served_unwrapped(client: httpx.AsyncClient) -> None:
    guest = next(iter(ORG.guests.values()))
    body = (await client.get(f"/v1/guests/{guest.id}")).json()
    assert body["id"] == guest.id
    assert body["center_id"] == guest.center_id
    assert body["personal_info"]["email"] == guest.email
    assert body["personal_info"]["mobile_phone"] == {"country_code": 1, "number": guest.phone}
    assert body["preferences"]["receive_marketing_email"] is True
    assert body["error"] is None


async def test_a_guests_memberships_at_a_center_are_listed(client: httpx.AsyncClient) -> None:
    membership = next(m for m in ORG.memberships if m.freeze is not None)
    response = await client.get(f"/v1/guests/{membership.guest_id}/memberships",
                                params={"center_id": membership.center_id})
    assert response.status_code == 200
    listed = {m["user_membership_id"]: m for m in response.json()["guest_memberships"]}
    item = listed[membership.id]
    assert item["group_user_membership_id"] == membership.invoice_id
    assert item["recurrence_status"] == 3
    assert item["freeze"]["type"] == 2
    assert item["membership"]["guestpass_balance"] == membership.guestpass_balance
    assert item["center"]["id"] == membership.center_id


async def test_a_guests_packages_at_a_center_are_listed(client: httpx.AsyncClient) -> None:
    package = ORG.packages[0]
    response = await client.get(f"/v1/guests/{package.guest_id}/packages",
                                params={"center_id": package.center_id})
    body = response.json()
    assert response.status_code == 200
    item = next(p for p in body["packages"] if p["user_package_id"] == package.id)
    assert item["invoice"]["id"] == package.invoice_id
    assert item["services"][0]["balance"] == package.services[0].balance
    assert body["page_info"] == {"total": len(body["packages"]), "page": 1, "size": 100}


async def test_a_center_is_served_in_its_wrapper(client: httpx.AsyncClient) -> None:
    center = next(iter(ORG.centers.values()))
    body = (await client.get(f"/v1/Centers/{center.id.upper()}")).json()
    assert body["center"] == {"id": center.id, "name": center.name, "code": center.code,
                              "time_zone_id": center.time_zone_id, "currency_id": 148}


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/v1/invoices/{id}", 404,
     {"invoice": None, "error": {"code": 428, "message": "Invoice not found"}}),
    ("/v1/guests/{id}", 404, {"error": {"code": 505, "message": "Invalid guest_id"}}),
    ("/v1/guests/{id}/memberships?center_id=x", 404,
     {"error": {"code": 505, "message": "Invalid guest_id"}}),
    ("/v1/guests/{id}/packages", 400,
     {"error": {"code": 400, "message": "center_id is required"}}),
    ("/v1/centers/{id}", 404,
     {"center": None, "error": {"code": 502, "message": "Invalid center_id"}}),
])
async def test_unknown_ids_and_missing_center_get_zenotis_errors(
    client: httpx.AsyncClient, path: str, status: int, body: dict[str, Any]
) -> None:
    response = await client.get(path.format(id=uuid.uuid4()))
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize("authorization", [None, "bearer test-key", "apikey", "apikey other"])
async def test_calls_without_an_accepted_key_are_denied(
    serve: Serve, authorization: str | None
) -> None:
    async with serve(api_keys=["test-key"]) as client:
        headers = {"Authorization": authorization} if authorization else {}
        client.headers.pop("Authorization")
        response = await client.get(f"/v1/guests/{ORG.memberships[0].guest_id}", headers=headers)
    assert response.status_code == 401
    denied = "Authorization has been denied for this request."
    assert response.json() == {"error": {"code": 401, "message": denied}}
    assert response.headers["RateLimit-Limit"] == "60;w=60;b=60"


async def test_the_call_past_the_bucket_is_throttled(serve: Serve) -> None:
    guest_id = ORG.memberships[0].guest_id
    async with serve(calls_per_window=5, window_seconds=60.0) as client:
        answers = [await client.get(f"/v1/guests/{guest_id}") for _ in range(6)]
        other_key = await client.get(f"/v1/guests/{guest_id}",
                                     headers={"Authorization": "apikey b"})
        stats = (await client.get("/_sandbox/stats")).json()
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    throttled = answers[-1]
    assert throttled.headers["Retry-After"] == "12"
    assert throttled.headers["Organization-RateLimit-Limit"] == "5;w=60;b=5"
    assert throttled.json() == {"error": {"code": 429, "message": "Rate limit exceeded"}}
    assert other_key.status_code == 200
    assert (stats["calls"], stats["throttled"], stats["by_endpoint"]["guest"]) == (7, 1, 7)


async def test_every_response_carries_the_rate_limit_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/invoices/{uuid.uuid4()}")
    assert response.headers["Organization-RateLimit-Limit"] == "60;w=60;b=60"
    assert response.headers["RateLimit-Remaining"] == "59"
    assert int(response.headers["RateLimit-Reset"]) >= 1


async def test_an_error_rate_of_one_answers_5xx_and_still_spends_tokens(serve: Serve) -> None:
    async with serve(error_rate=1.0) as client:
        answers = [await client.get(f"/v1/centers/{next(iter(ORG.centers))}") for _ in range(3)]
        stats = (await client.get("/_sandbox/stats")).json()
    assert all(500 <= a.status_code < 600 for a in answers)
    assert answers[-1].headers["RateLimit-Remaining"] == "57"
    assert stats["faults"]["error"] == 3


async def test_a_throttle_rate_of_one_answers_429_with_retry_after(serve: Serve) -> None:
    async with serve(throttle_rate=1.0) as client:
        response = await client.get(f"/v1/centers/{next(iter(ORG.centers))}")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_timeout_rate_of_one_answers_only_after_the_hang(serve: Serve) -> None:
    async with serve(timeout_rate=1.0, hang_seconds=5.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"/v1/centers/{next(iter(ORG.centers))}", timeout=0.2)
    async with serve(timeout_rate=1.0, hang_seconds=0.05) as client:
        response = await client.get(f"/v1/centers/{next(iter(ORG.centers))}")
    assert response.status_code == 200


async def test_stats_can_be_reset_and_sandbox_paths_are_free(client: httpx.AsyncClient) -> None:
    await client.get(f"/v1/guests/{uuid.uuid4()}")
    assert (await client.get("/_sandbox/stats")).json()["calls"] == 1
    reset = await client.post("/_sandbox/reset-stats")
    health = await client.get("/_sandbox/health", headers={"Authorization": ""})
    assert reset.json()["calls"] == 0
    assert health.json()["status"] == "ok"
    assert (await client.get("/_sandbox/stats")).json()["calls"] == 0


async def test_unknown_paths_get_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


async def test_run_sandbox_serves_until_cancelled() -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(run_sandbox(SandboxConfig(port=0, guests=5), ready=ready))
    await asyncio.wait_for(ready.wait(), timeout=2.0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()


def test_a_bad_config_is_refused_with_every_problem() -> None:
    config = SandboxConfig(error_rate=2.0, calls_per_window=0, api_keys=[""])
    with pytest.raises(ConfigError) as caught:
        config.check()
    message = str(caught.value)
    assert "error_rate" in message
    assert "calls_per_window" in message
    assert "api_keys" in message

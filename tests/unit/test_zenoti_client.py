"""ZenotiClient over httpx.MockTransport: requests sent, budget kept, answers mapped to fates."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from processor.errors import (
    HandlingError,
    PermanentError,
    RateLimited,
    ResourceNotFound,
    ZenotiUnavailable,
)
from processor.metrics import Metrics
from processor.settings import Settings, TenantSettings
from processor.zenoti.client import ZenotiClient
from processor.zenoti.clients import ZenotiClients

API_KEY = "zk-live-4f1d9c2a7be0"
BASE_URL = "https://zenoti.test"
INVOICE_ID = "1ee272c2-bb54-4350-87d3-f32ac034aacc"
GUEST_ID = "184772fc-58bf-4257-b932-8d91be2b5736"
CENTER_ID = "a11f578a-1b81-4de0-8834-915f79e5362b"
RATE_HEADERS = {"RateLimit-Remaining": "7", "RateLimit-Reset": "12.5"}

INVOICE_BODY: dict[str, Any] = {
    "invoice": {
        "id": INVOICE_ID, "invoice_number": "RR16675", "receipt_number": "RRR6059",
        "center_id": CENTER_ID, "is_closed": True, "invoice_date": "2022-03-02T05:55:14",
        "total_price": {"currency_id": 1, "sum_total": 110},
        "guest": {"id": GUEST_ID, "first_name": "Ada", "last_name": "Lovelace",
                  "email": "ada@example.com"},
        "invoice_items": [],
    },
    "error": None,
}
GUEST_BODY: dict[str, Any] = {
    "id": GUEST_ID, "code": "G0042", "center_id": CENTER_ID, "center_name": "Khammam",
    "created_date": "2021-01-02T10:00:00",
    "personal_info": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                      "mobile_phone": {"country_code": 1, "number": "5550100"},
                      "gender": 1, "date_of_birth": None},
    "preferences": {}, "error": None,
}


class RecordingBudget:
    """A budget that always grants, after a pretend wait, and remembers what it was told."""

    def __init__(self) -> None:
        self.acquired = 0
        self.observed: list[tuple[int | None, float | None]] = []
        self.paused: list[float] = []

    async def acquire(self, max_wait: float = float("inf")) -> float:
        self.acquired += 1
        return 0.25

    def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        self.observed.append((remaining, reset_seconds))

    def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


class FakeApi:
    """The transport's handler: answers with ``answer`` and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = self.json(200, INVOICE_BODY)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @staticmethod
    def json(
        status: int, body: object, headers: dict[str, str] | None = None
    ) -> Callable[[httpx.Request], httpx.Response]:
        every = {**RATE_HEADERS, **(headers or {})}
        return lambda request: httpx.Response(status, json=body, headers=every)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def budget() -> RecordingBudget:
    return RecordingBudget()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def http(api: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(api)) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, budget: RecordingBudget, metrics: Metrics) -> ZenotiClient:
    return ZenotiClient(
        http, tenant="acme", api_key=SecretStr(API_KEY), budget=budget, metrics=metrics
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_get_invoice_returns_the_invoice_and_its_guest(client: ZenotiClient) -> None:
    invoice = await client.get_invoice(INVOICE_ID)
    assert invoice.id == INVOICE_ID
    assert invoice.guest is not None and invoice.guest.id == GUEST_ID


async def test_every_call_sends_the_api_key_to_the_resource_path(
    client: ZenotiClient, api: FakeApi
) -> None:
    await client.get_invoice(INVOICE_ID)
    request = api.requests[0]
    assert request.method == "GET"
    assert request.url.path == f"/v1/invoices/{INVOICE_ID}"
    assert request.headers["Authorization"] == f"apikey {API_KEY}"


async def test_get_guest_reads_the_guest_from_the_top_level(
    client: ZenotiClient, api: FakeApi
) -> None:
    api.answer = api.json(200, GUEST_BODY)
    guest = await client.get_guest(GUEST_ID)
    assert (guest.id, guest.code, guest.center_id) == (GUEST_ID, "G0042", CENTER_ID)
    assert guest.personal_info.mobile_phone is not None
    assert guest.personal_info.mobile_phone.number == "5550100"


async def test_list_memberships_asks_at_the_center_and_returns_the_items(
    client: ZenotiClient, api: FakeApi
) -> None:
    item = {"user_membership_id": "m-1", "status": 1, "center": {"id": CENTER_ID, "name": "K"},
            "membership": {"id": "p-1", "name": "Cycling", "guestpass_total": 55}, "freeze": None}
    api.answer = api.json(200, {"guest_memberships": [item], "error": None})
    memberships = await client.list_memberships(GUEST_ID, CENTER_ID)
    assert [m.user_membership_id for m in memberships] == ["m-1"]
    assert api.requests[0].url.path == f"/v1/guests/{GUEST_ID}/memberships"
    assert api.requests[0].url.params["center_id"] == CENTER_ID


async def test_list_packages_asks_for_the_largest_page_at_the_center(
    client: ZenotiClient, api: FakeApi
) -> None:
    item = {"user_package_id": "up-1", "status": 1, "user_package_state": 1,
            "package": {"id": "p-1", "name": "Facials"}, "services": []}
    body = {"packages": [item], "page_info": {"total": 1, "page": 1, "size": 100}, "error": None}
    api.answer = api.json(200, body)
    packages = await client.list_packages(GUEST_ID, CENTER_ID)
    assert [p.user_package_id for p in packages] == ["up-1"]
    params = api.requests[0].url.params
    assert (params["center_id"], params["page_size"]) == (CENTER_ID, "100")


async def test_a_null_list_reads_as_no_items(client: ZenotiClient, api: FakeApi) -> None:
    api.answer = api.json(200, {"guest_memberships": None, "error": None})
    assert await client.list_memberships(GUEST_ID, CENTER_ID) == []


async def test_an_id_stays_one_path_segment(client: ZenotiClient, api: FakeApi) -> None:
    api.answer = api.json(200, GUEST_BODY)
    await client.get_guest("../invoices/x")
    assert api.requests[0].url.raw_path == b"/v1/guests/..%2Finvoices%2Fx"


async def test_each_call_spends_a_token_and_reports_the_rate_headers(
    client: ZenotiClient, budget: RecordingBudget
) -> None:
    await client.get_invoice(INVOICE_ID)
    assert budget.acquired == 1
    assert budget.observed == [(7, 12.5)]


async def test_unreadable_rate_headers_are_reported_as_unknown(
    client: ZenotiClient, api: FakeApi, budget: RecordingBudget
) -> None:
    headers = {"RateLimit-Remaining": "lots", "RateLimit-Reset": ""}
    api.answer = api.json(200, INVOICE_BODY, headers)
    await client.get_invoice(INVOICE_ID)
    assert budget.observed == [(None, None)]


async def test_calls_and_token_waits_are_measured(client: ZenotiClient, metrics: Metrics) -> None:
    await client.get_invoice(INVOICE_ID)
    assert sample(metrics, "zenoti_events_api_calls_total", endpoint="invoice", status="200") == 1
    assert sample(metrics, "zenoti_events_api_seconds_count", endpoint="invoice") == 1
    waited = sample(metrics, "zenoti_events_api_tokens_wait_seconds_sum", tenant="acme")
    assert waited == 0.25


async def test_429_raises_rate_limited_with_retry_after(
    client: ZenotiClient, api: FakeApi, budget: RecordingBudget, metrics: Metrics
) -> None:
    api.answer = api.json(429, {"error": "throttled"}, {"Retry-After": "3"})
    with pytest.raises(RateLimited) as caught:
        await client.get_invoice(INVOICE_ID)
    assert caught.value.retry_after == 3.0
    assert budget.paused == [3.0]
    assert sample(metrics, "zenoti_events_api_calls_total", endpoint="invoice", status="429") == 1


async def test_429_without_retry_after_is_rate_limited_without_advice(
    client: ZenotiClient, api: FakeApi, budget: RecordingBudget
) -> None:
    api.answer = lambda request: httpx.Response(429, text="slow down")
    with pytest.raises(RateLimited) as caught:
        await client.get_guest(GUEST_ID)
    assert caught.value.retry_after is None
    assert budget.paused == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_raises_zenoti_unavailable(
    client: ZenotiClient, api: FakeApi, status: int
) -> None:
    api.answer = lambda request: httpx.Response(status, text="<html>bad gateway</html>")
    with pytest.raises(ZenotiUnavailable, match=f"answered {status} for invoice"):
        await client.get_invoice(INVOICE_ID)


async def test_a_timeout_raises_zenoti_unavailable_counted_as_timeout(
    client: ZenotiClient, api: FakeApi, metrics: Metrics
) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    api.answer = time_out
    with pytest.raises(ZenotiUnavailable, match="did not answer in time for guest"):
        await client.get_guest(GUEST_ID)
    assert sample(metrics, "zenoti_events_api_calls_total", endpoint="guest", status="timeout") == 1


async def test_a_connection_error_raises_zenoti_unavailable_counted_as_error(
    client: ZenotiClient, api: FakeApi, metrics: Metrics
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api.answer = refuse
    with pytest.raises(ZenotiUnavailable, match="unreachable"):
        await client.list_packages(GUEST_ID, CENTER_ID)
    calls = sample(metrics, "zenoti_events_api_calls_total", endpoint="packages", status="error")
    assert calls == 1


async def test_404_raises_resource_not_found_naming_the_invoice(
    client: ZenotiClient, api: FakeApi
) -> None:
    body = {"invoice": None, "error": {"code": 428, "message": "Invoice not found"}}
    api.answer = api.json(404, body)
    with pytest.raises(ResourceNotFound, match=f"no invoice '{INVOICE_ID}'.*Invoice not found"):
        await client.get_invoice(INVOICE_ID)


async def test_invalid_guest_id_raises_resource_not_found_whatever_the_status(
    client: ZenotiClient, api: FakeApi
) -> None:
    api.answer = api.json(400, {"error": {"code": 505, "message": "Invalid guest_id"}})
    with pytest.raises(ResourceNotFound, match=f"guest '{GUEST_ID}'"):
        await client.get_guest(GUEST_ID)


async def test_invoice_not_found_code_in_a_200_raises_resource_not_found(
    client: ZenotiClient, api: FakeApi
) -> None:
    body = {"invoice": None, "error": {"code": 428, "message": "Invoice not found"}}
    api.answer = api.json(200, body)
    with pytest.raises(ResourceNotFound):
        await client.get_invoice(INVOICE_ID)


@pytest.mark.parametrize("status", [400, 401, 403, 422])
async def test_other_4xx_raise_permanent_error(
    client: ZenotiClient, api: FakeApi, status: int
) -> None:
    api.answer = api.json(status, {"error": {"code": 403, "message": "No permission"}})
    refused = rf"refused invoice '{INVOICE_ID}' \({status}"
    with pytest.raises(PermanentError, match=refused) as caught:
        await client.get_invoice(INVOICE_ID)
    assert not isinstance(caught.value, ResourceNotFound)


async def test_a_200_with_an_error_raises_permanent_error_naming_it(
    client: ZenotiClient, api: FakeApi
) -> None:
    error = {"StatusCode": 4081, "Message": "Not frozen"}
    api.answer = api.json(200, {"guest_memberships": [], "error": error})
    with pytest.raises(PermanentError, match=r"error for memberships.*4081: Not frozen"):
        await client.list_memberships(GUEST_ID, CENTER_ID)


async def test_a_200_of_an_unexpected_shape_raises_permanent_error(
    client: ZenotiClient, api: FakeApi
) -> None:
    api.answer = api.json(200, {"invoice": {"number": "RR1"}, "error": None})
    with pytest.raises(PermanentError, match=r"unexpected shape for invoice.*invoice\.id"):
        await client.get_invoice(INVOICE_ID)


async def test_a_200_that_is_not_json_raises_permanent_error(
    client: ZenotiClient, api: FakeApi
) -> None:
    api.answer = lambda request: httpx.Response(200, text="<html>maintenance</html>")
    with pytest.raises(PermanentError, match="unexpected shape for guest"):
        await client.get_guest(GUEST_ID)


ECHOING_KEY = {"error": {"code": 401, "message": f"api key {API_KEY} is not valid"}}


@pytest.mark.parametrize(
    "answer",
    [
        FakeApi.json(401, ECHOING_KEY),
        FakeApi.json(200, ECHOING_KEY),
        FakeApi.json(404, ECHOING_KEY),
        FakeApi.json(429, ECHOING_KEY, {"Retry-After": "1"}),
        FakeApi.json(503, ECHOING_KEY),
        FakeApi.json(200, {"invoice": {"id": None, "note": API_KEY}, "error": None}),
    ],
)
async def test_the_api_key_never_appears_in_exception_text(
    client: ZenotiClient, api: FakeApi, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    api.answer = answer
    with pytest.raises(HandlingError) as caught:
        await client.get_invoice(INVOICE_ID)
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


def settings_with(**tenants: str) -> Settings:
    named = {name: TenantSettings(api_key=SecretStr(key)) for name, key in tenants.items()}
    return Settings(api_key=SecretStr(API_KEY), tenants=named)


async def test_clients_make_one_client_per_tenant_and_keep_it(http: httpx.AsyncClient) -> None:
    clients = ZenotiClients(settings_with(spa="other-key"), Metrics(), http=http)
    default = clients.for_tenant("default")
    assert clients.for_tenant("default") is default
    assert clients.for_tenant("spa") is not default
    assert clients.for_tenant("spa").tenant == "spa"


async def test_clients_refuse_a_tenant_without_an_api_key(http: httpx.AsyncClient) -> None:
    clients = ZenotiClients(settings_with(empty=""), Metrics(), http=http)
    with pytest.raises(PermanentError, match="'empty' has no Zenoti API key"):
        clients.for_tenant("empty")
    with pytest.raises(PermanentError, match="'nobody'"):
        clients.for_tenant("nobody")


async def test_clients_give_each_tenant_its_own_budget(
    http: httpx.AsyncClient, api: FakeApi
) -> None:
    budgets: dict[str, RecordingBudget] = {}

    def budget_for(tenant: str) -> RecordingBudget:
        return budgets.setdefault(tenant, RecordingBudget())

    clients = ZenotiClients(settings_with(spa="spa-key"), Metrics(), http=http,
                            budget_factory=budget_for)
    await clients.for_tenant("spa").get_invoice(INVOICE_ID)
    assert budgets["spa"].acquired == 1
    assert api.requests[0].headers["Authorization"] == "apikey spa-key"


async def test_clients_leave_an_injected_pool_open(http: httpx.AsyncClient) -> None:
    clients = ZenotiClients(settings_with(), Metrics(), http=http)
    await clients.aclose()
    assert not http.is_closed


async def test_clients_close_the_pool_they_made() -> None:
    clients = ZenotiClients(settings_with(), Metrics())
    client = clients.for_tenant("default")
    await clients.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_guest(GUEST_ID)

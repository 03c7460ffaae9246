"""In-place retries of one Zenoti call: only while they are cheap."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from processor.errors import RateLimited, ZenotiUnavailable
from processor.metrics import Metrics
from processor.zenoti.budget import TokenBucket
from processor.zenoti.client import ZenotiClient

GUEST = {"id": "g1", "center_id": "c1", "personal_info": {"first_name": "A", "last_name": "B"}}


def client_answering(*answers: httpx.Response, retries: int = 2) -> tuple[ZenotiClient, list[int]]:
    calls: list[int] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    http = httpx.AsyncClient(base_url="http://zenoti.test", transport=httpx.MockTransport(handler))
    client = ZenotiClient(http, tenant="t", api_key=SecretStr("k"),
                          budget=TokenBucket(1000, 1.0), metrics=Metrics(), retries=retries,
                          backoff=0.001, short_wait=0.05)
    return client, calls


async def test_a_5xx_is_retried_in_place_and_the_call_succeeds() -> None:
    client, calls = client_answering(httpx.Response(503), httpx.Response(502),
                                     httpx.Response(200, json=GUEST))
    guest = await client.get_guest("g1")
    assert guest.id == "g1" and len(calls) == 3


async def test_after_the_last_retry_the_error_is_raised() -> None:
    client, calls = client_answering(httpx.Response(503))
    with pytest.raises(ZenotiUnavailable):
        await client.get_guest("g1")
    assert len(calls) == 3


async def test_a_429_asking_for_a_short_wait_is_awaited_in_place() -> None:
    client, calls = client_answering(httpx.Response(429, headers={"Retry-After": "0.01"}),
                                     httpx.Response(200, json=GUEST))
    assert (await client.get_guest("g1")).id == "g1"
    assert len(calls) == 2


async def test_a_429_asking_for_a_long_wait_is_raised_at_once_for_the_broker_to_wait() -> None:
    client, calls = client_answering(httpx.Response(429, headers={"Retry-After": "30"}))
    with pytest.raises(RateLimited) as info:
        await client.get_guest("g1")
    assert info.value.retry_after == 30.0 and len(calls) == 1


async def test_permanent_answers_are_never_retried() -> None:
    client, calls = client_answering(httpx.Response(400, json={"error": {"code": 1}}))
    with pytest.raises(Exception, match="refused"):
        await client.get_guest("g1")
    assert len(calls) == 1

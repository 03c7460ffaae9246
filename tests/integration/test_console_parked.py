"""The console against the real broker: log in, filter a lot, open a message whose id carries
markup (shown escaped), replay it through the confirmation step (in the background, its
progress on the lot's page) and see it leave the lot for its work queue; an action without
the CSRF token is refused. A purge during views takes exactly what it counted, a second act
is refused while one runs, the act takes nothing parked after the confirmation, a lot over
the limit is not read, and every action's audit lines say the filter, the count and the
session. (HTTP client, not a browser.)"""

from __future__ import annotations

import asyncio
import json
import re
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from processor.broker import topology
from processor.console import lots
from processor.console.app import make_app
from processor.settings import Settings
from tests.conftest import Broker
from tests.integration.amqp import channel, depth
from tests.integration.test_dlq_types import park as park_unrouted
from tests.integration.test_parking import HANDLER, LOT, NOW, WORK, park, prepare

pytestmark = pytest.mark.integration

EVIL = "<script>alert(1)</script><b>x</b>"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def console(broker: Broker) -> AsyncIterator[tuple[str, Client, str]]:
    """The broker's URL with the test topology, and a console logged in to write (its CSRF
    token)."""
    url = await prepare(broker.url)
    settings = Settings(amqp_url=SecretStr(url), console_token=SecretStr("r"),
                        console_write_token=SecretStr("w"), console_secure_cookie=False)
    client = TestClient(TestServer(make_app(settings)))
    await client.start_server()
    await client.post("/login", data={"token": "w"})
    match = re.search(r"name='csrf' value='([^']+)'", await (await client.get("/lots")).text())
    assert match
    yield url, client, match.group(1)
    await client.close()


def hidden(page: str) -> dict[str, str]:
    """A page's hidden fields (the confirmation's form), unescaped enough for ours."""
    return {n: v.replace("&#x27;", "'").replace("&amp;", "&")
            for n, v in re.findall(r"name='([^']+)' value='([^']*)'", page)}


async def confirm_and_act(client: Client, csrf: str, **form: str) -> Any:
    """Confirm ``form``'s action and act with the confirmation's own form, each asked again
    while views hold the console's read slots (503) or the lot (409 busy), as the answers say."""
    for _ in range(60):
        answer = await client.post(f"/lot/{HANDLER}/confirm", data={"csrf": csrf, **form})
        if answer.status != 503:
            break
        assert answer.headers["Retry-After"]
        await asyncio.sleep(0.5)
    confirm = await answer.text()
    assert answer.status == 200, confirm
    fields = hidden(confirm.split(f"action='/lot/{HANDLER}/act'")[1])
    for _ in range(60):  # a view holding the lot answers 409 busy: the operator tries again
        act = await client.post(f"/lot/{HANDLER}/act", data=fields, allow_redirects=False)
        if act.status != 409 or "is busy" not in await act.text():
            return act
        await asyncio.sleep(0.5)
    raise AssertionError("the lot stayed busy")


async def finished(client: Client) -> str:
    """The lot's page once its job has ended."""
    for _ in range(200):
        page = await (await client.get(f"/lot/{HANDLER}")).text()
        if "id='lot-status'" in page and "running" not in page:
            return page
        await asyncio.sleep(0.1)
    raise AssertionError("the job did not end")


async def test_list_filter_show_and_replay(console: tuple[str, Client, str]) -> None:
    url, client, csrf = console
    await park(url, "plain-1")
    await park(url, EVIL, event_type="Guest.Membership.Freeze", reason="rejected")
    listed = await (await client.get(f"/lot/{HANDLER}", params={"reason": "rejected"})).text()
    assert "1 message(s)" in listed and "plain-1" not in listed
    assert "<script>" not in listed and "&lt;script&gt;alert(1)" in listed
    shown = await client.get(f"/lot/{HANDLER}/message", params={"id": EVIL})
    text = await shown.text()
    assert shown.status == 200 and "<b>x</b>" not in text and "&lt;b&gt;x" in text
    refused = await client.post(f"/lot/{HANDLER}/act", data={"action": "replay", "id": "x"})
    assert refused.status == 403
    with capture_logs() as logged:
        done = await confirm_and_act(client, csrf, action="replay", id="plain-1")
        assert done.status == 303
        page = await finished(client)
    assert "Replay of id=plain-1" in page and "finished: read 2 of 2, replayed 1" in page
    assert await depth(url, LOT) == 1 and await depth(url, WORK) == 1
    start, end = [e for e in logged if e["event"] == "console.action"]
    assert start["action"] == "replay" and start["count"] is None
    assert start["confirmed_expected"] == 1 and "id=plain-1" in start["filter"]
    assert end["action"] == "replayed" and end["count"] == 1 and end["error"] is None
    assert re.fullmatch("[0-9a-f]{8}", end["session"]) and end["session"] == start["session"]
    assert end["session"] not in (client.session.cookie_jar.filter_cookies(
        client.make_url("/")).get("zenoti_console").value)  # type: ignore[union-attr]
    types = await client.get("/types")
    assert types.status == 200 and "Unrouted event types" in await types.text()


async def test_a_purge_during_views_takes_what_it_counted(
        console: tuple[str, Client, str]) -> None:
    url, client, csrf = console
    await asyncio.gather(*(park(url, f"m{n}") for n in range(150)))
    views = [asyncio.create_task(client.get(f"/lot/{HANDLER}")) for _ in range(6)]
    with capture_logs() as logged:
        done = await confirm_and_act(client, csrf, action="purge")
        assert done.status == 303, await done.text()
        await finished(client)
    for view in views:
        assert (await view).status in (200, 503)
    assert await depth(url, LOT) == 0
    end = [e for e in logged if e.get("action") == "purged"]
    assert end and end[0]["count"] == 150 and end[0]["confirmed_expected"] == 150


async def test_one_act_at_a_time_at_the_bounded_rate(console: tuple[str, Client, str]) -> None:
    url, client, csrf = console
    await asyncio.gather(*(park(url, f"r{n}") for n in range(20)))
    started = time.monotonic()
    first = await confirm_and_act(client, csrf, action="replay")
    assert first.status == 303
    second = await client.post(f"/lot/{HANDLER}/act", data={
        "csrf": csrf, "action": "purge", "until": "2099-01-01T00:00:00+00:00"})
    assert second.status == 409 and "running" in await second.text()
    running = await (await client.get(f"/lot/{HANDLER}")).text()
    assert "running" in running and "comes back when it ends" in running
    await finished(client)
    assert time.monotonic() - started >= 1.8  # 20 at 10 a second
    assert await depth(url, WORK) == 20


async def test_the_act_takes_nothing_parked_after_the_confirmation(
        console: tuple[str, Client, str]) -> None:
    url, client, csrf = console
    await park(url, "before", dead_ago=60)
    confirm = await (await client.post(f"/lot/{HANDLER}/confirm",
                                       data={"csrf": csrf, "action": "purge"})).text()
    assert "Purge 1 message(s)" in confirm and "Filter: every message; parked before" in confirm
    assert f"<a href='/lot/{HANDLER}?' id='cancel'>Cancel</a>" in confirm
    # Parked (by its time) a minute after the confirmation; ``park`` counts from the test
    # module's import time, which may be long ago in a whole run.
    await park(url, "after", dead_ago=(NOW - datetime.now(UTC)).total_seconds() - 60)
    fields = hidden(confirm.split(f"action='/lot/{HANDLER}/act'")[1])
    assert fields["until"] and fields["expected"] == "1"
    assert (await client.post(f"/lot/{HANDLER}/act", data=fields,
                              allow_redirects=False)).status == 303
    assert "purged 1" in await finished(client)
    listed = await (await client.get(f"/lot/{HANDLER}")).text()
    assert "after" in listed and ">before<" not in listed
    assert "Replay the 1 selected" in listed and "Event type<input name='event_type'" in listed
    assert re.search(r"'when'>\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ</span></td>", listed)  # dead at
    for _ in range(50):  # the page's browse returns its messages to the lot asynchronously
        lots = await (await client.get("/lots")).text()
        if f"{HANDLER}</a></td><td>1</td>" in lots:
            break
        await asyncio.sleep(0.1)
    assert f"{HANDLER}</a></td><td>1</td>" in lots  # the lot's depth beside its name


async def test_the_confirmation_shows_its_filter_and_cancels_back_to_it(
        console: tuple[str, Client, str]) -> None:
    _, client, csrf = console
    confirm = await (await client.post(f"/lot/{HANDLER}/confirm", data={
        "csrf": csrf, "action": "replay", "reason": "<b>permanent</b>"})).text()
    assert "Replay 0 message(s)" in confirm and "reason=&lt;b&gt;permanent&lt;/b&gt;" in confirm
    assert "?reason=%3Cb%3Epermanent%3C%2Fb%3E' id='cancel'" in confirm


async def test_a_lot_over_the_limit_is_not_read(console: tuple[str, Client, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, client, _ = console
    monkeypatch.setattr(lots, "LIMIT", 3)
    await asyncio.gather(*(park(url, f"big{n}") for n in range(4)))
    page = await (await client.get(f"/lot/{HANDLER}")).text()
    assert "id='too-many'" in page and "big0" not in page
    assert await depth(url, LOT) == 4


async def test_concurrent_views_of_big_messages_stay_small(
        console: tuple[str, Client, str]) -> None:
    url, client, _ = console
    body = json.dumps({"id": "big", "data": {"pad": "x" * (2 * 1024 * 1024)}}).encode()
    async with channel(url) as ch:
        exchange = await ch.get_exchange(topology.DEAD)
        for n in range(10):
            await exchange.publish(aio_pika.Message(body, message_id=f"big{n}", headers={
                "x-zenoti-reason": "rejected"}), routing_key=WORK)
    tracemalloc.start()
    try:
        answers = await asyncio.gather(*(client.get(path) for path in [
            f"/lot/{HANDLER}"] * 6 + [f"/lot/{HANDLER}/message?id=big3"] * 2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert {a.status for a in answers} <= {200, 503} and answers[0].status == 200
    assert peak < 40 * 1024 * 1024  # about 14 MiB; 8 views each keeping all kept 160 MiB
    assert await depth(url, LOT) == 10


async def test_each_unrouted_type_opens_its_messages_in_the_lot_to_replay(
    console: tuple[str, Client, str],
) -> None:
    url, client, _ = console
    await park_unrouted(url, "Guest.Membership.Frozen", {}, "fz-1")
    await park_unrouted(url, EVIL, {}, "evil-1")
    page = await (await client.get("/types")).text()
    assert "href='/lot/unrouted?event_type=Guest.Membership.Frozen'" in page
    assert "<script>" not in page and "event_type=%3Cscript%3E" in page
    listed = await (await client.get("/lot/unrouted",
                                     params={"event_type": "Guest.Membership.Frozen"})).text()
    assert "1 message(s)" in listed and "Replay the 1 selected" in listed

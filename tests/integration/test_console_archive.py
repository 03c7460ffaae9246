"""The console's archive page against the real broker: find a window's deliveries by tenant,
replay the window after the confirmation (its copies reach the handler's work queue, marked
as replays); a read-only session cannot replay (403), nor a POST without the CSRF token. The
act replays the window the confirmation pinned, refuses one whose count changed since, and
logs the real counts (never the form's), with the session's tag."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from processor import message as m
from processor.console.app import make_app
from processor.settings import Settings
from tests.conftest import Broker
from tests.integration.amqp import depth, drain
from tests.integration.test_console_parked import hidden
from tests.integration.test_parking import WORK, prepare
from tests.integration.test_replay import accept

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
FREEZE = "Guest.Membership.Freeze"


async def _client(settings: Settings,
                  token: str) -> tuple[TestClient[web.Request, web.Application], str]:
    """A logged-in client and its session's CSRF token."""
    client = TestClient(TestServer(make_app(settings)))
    await client.start_server()
    await client.post("/login", data={"token": token}, allow_redirects=False)
    page = await (await client.get("/lots")).text()
    match = re.search(r"name='csrf' value='([^']+)'", page)
    assert match
    return client, match.group(1)


async def test_find_and_replay_a_window(broker: Broker) -> None:
    url = await prepare(broker.url)
    await accept(url, [("old", FREEZE, NOW - timedelta(hours=3)),
                       ("a1", FREEZE, NOW - timedelta(minutes=50)),
                       ("a2", FREEZE, NOW - timedelta(minutes=40))], tenant="acme")
    await accept(url, [("g1", FREEZE, NOW - timedelta(minutes=45))], tenant="globex")
    assert len(await drain(url, WORK, 4)) == 4  # delivered live: the queue starts empty
    settings = Settings(amqp_url=SecretStr(url), console_token=SecretStr("r"),
                        console_write_token=SecretStr("w"), console_secure_cookie=False)
    window = {"since": (NOW - timedelta(hours=1)).isoformat(), "until": NOW.isoformat(),
              "tenant": "acme"}
    writer, csrf = await _client(settings, "w")
    reader, reader_csrf = await _client(settings, "r")
    try:
        found = await (await writer.get("/archive", params=window)).text()
        assert "2 deliveries" in found and "acme:a1" in found and "acme:a2" in found
        assert "globex:g1" not in found and "acme:old" not in found
        assert "id='replay'" in found
        shown = await (await reader.get("/archive", params=window)).text()
        assert "acme:a1" in shown and "id='replay'" not in shown
        refused = await reader.post("/archive/confirm", data={"csrf": reader_csrf, **window})
        assert refused.status == 403 and "read-only" in await refused.text()
        forged = await writer.post("/archive/act", data=window)
        assert forged.status == 403
        confirm = await (await writer.post("/archive/confirm",
                                           data={"csrf": csrf, **window})).text()
        assert "Replay 2 deliveries" in confirm and "membership-freeze: 2" in confirm
        assert "id='confirm'" in confirm
        fields = hidden(confirm.split("action='/archive/act'")[1])
        assert fields["until"] == window["until"] and fields["expected"] == "2"
        changed = await writer.post("/archive/act", data={**fields, "expected": "999"})
        assert changed.status == 409 and "confirm again" in await changed.text()
        with capture_logs() as logged:
            done = await writer.post("/archive/act", data=fields, allow_redirects=False)
            assert done.status == 303
            copies = await drain(url, WORK, 2, timeout=15)
            for _ in range(50):
                status = await (await writer.get("/archive")).text()
                if "finished" in status:
                    break
                await asyncio.sleep(0.2)
        assert sorted(c.message_id or "" for c in copies) == ["acme:a1", "acme:a2"]
        assert all(c.headers.get(m.REPLAY_OF) for c in copies)
        assert "finished: read" in status and "sent 2" in status
        assert await depth(url, WORK) == 0
        start, end = [e for e in logged if e["event"] == "console.action"]
        assert (start["action"], start["count"], start["confirmed_expected"]) == (
            "archive_replay", 2, 2)
        assert (end["action"], end["count"], end["error"]) == ("archive_replayed", 2, None)
        assert end["session"] == start["session"] and len(end["session"]) == 8
    finally:
        await writer.close()
        await reader.close()

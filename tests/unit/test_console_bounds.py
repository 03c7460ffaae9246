"""The console's bounds without a broker (each source points at a closed port): metrics URLs
shown redacted, absurd gauges shown sanely, samples kept bounded, pages parsed strictly, a
busy console answering 503 with Retry-After, the broker down answering 503 by name, and an
unknown action refused before the broker is asked."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from structlog.testing import capture_logs

from processor.console import figures, guard, lot_jobs, overview
from processor.console.app import make_app
from processor.console.common import Actor, page_number
from processor.console.figures import ReasonCounts
from processor.console.guard import GUARD
from processor.console.scrape import MAX_SAMPLES, Sample, Scrape, Scraper, redact
from processor.ops import dlq
from processor.ops.parking import Filter, ParkedMessage
from processor.settings import Settings

CLOSED = "127.0.0.1:9"
SECRET_URL = f"http://scraper:hunter2@{CLOSED}/metrics?token=abc#frag"
Client = TestClient[web.Request, web.Application]


def _settings() -> Settings:
    return Settings(amqp_url=SecretStr(f"amqp://guest:guest@{CLOSED}/"),
                    console_token=SecretStr("r"), console_write_token=SecretStr("w"),
                    console_secure_cookie=False, console_metrics_urls=[SECRET_URL])


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A console logged in with the write token, its sources all down."""
    client = TestClient(TestServer(make_app(_settings())))
    await client.start_server()
    await client.post("/login", data={"token": "w"}, allow_redirects=False)
    yield client
    await client.close()


async def _csrf(client: Client) -> str:
    match = re.search(r"name='csrf' value='([^']+)'", await (await client.get("/lots")).text())
    assert match
    return match.group(1)


def test_a_url_is_redacted_to_scheme_host_port_and_path() -> None:
    assert redact(SECRET_URL) == f"http://{CLOSED}/metrics"
    assert redact("https://[::1]:9100/m?x=1") == "https://[::1]:9100/m"
    assert redact("http://h:99999/") == "(unreadable URL)"


async def test_the_overview_never_shows_a_metrics_urls_credentials(client: Client) -> None:
    text = await (await client.get("/")).text()
    assert "hunter2" not in text and "token=abc" not in text and "scraper:" not in text
    assert f"http://{CLOSED}/metrics" in text


def test_absurd_gauges_read_sanely() -> None:
    big = Sample(spool={n: v for (n, _), v in zip(
        overview._SPOOL, [1e300, math.nan, math.inf, -1e15], strict=True)})
    row = overview._spool([Scrape("http://i/metrics", big)])
    assert "1e+300" in row and "?" in row and "-1e+15" in row and len(row) < 1000
    flight = overview._in_flight([Scrape("u", Sample(in_flight={"a": math.inf}))])
    assert isinstance(flight, dict) and overview._figure(flight["a"]) == "?"


def test_reloading_keeps_a_bounded_number_of_samples() -> None:
    scraper, now = Scraper(["u"], min_gap=5.0, keep=300.0), time.monotonic()
    for n in range(20_000):  # a reload every 10 ms for 200 s
        scraper.record("u", now - 200 + n * 0.01, Sample(ok={"a": float(n)}))
    assert len(scraper._history["u"]) <= MAX_SAMPLES
    rates = scraper.rates()
    assert rates is not None and rates["a"] == pytest.approx(6000.0, rel=0.01)


@pytest.mark.parametrize("text", ["²", "9" * 5000, "-1", "1.5", "", " 3"])
def test_a_page_is_ascii_digits_else_the_first(text: str) -> None:
    assert page_number({"page": text}) == 0
    assert page_number({"page": "42"}) == 42


async def test_odd_pages_do_not_fail(client: Client) -> None:
    for page in ("²", "9" * 5000):
        answer = await client.get("/lot/unrouted", params={"page": page})
        assert answer.status == 503  # the broker is down; never a 500


@pytest.mark.parametrize("path", ["/lot/unrouted", "/lot/unrouted/message?id=x", "/types"])
async def test_lot_pages_say_the_broker_is_unavailable(client: Client, path: str) -> None:
    answer = await client.get(path)
    text = await answer.text()
    assert answer.status == 503 and "broker unavailable" in text
    assert "Traceback" not in text and answer.headers["Retry-After"]


async def test_a_busy_console_answers_503_with_retry_after(client: Client) -> None:
    assert client.app is not None
    slots = client.app[GUARD].reads
    while not slots.locked():
        await slots.acquire()
    started = time.monotonic()
    answer = await client.get("/lot/unrouted")
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "busy" in await answer.text() and time.monotonic() - started < 5


async def test_a_busy_console_answers_the_overview_503_too(client: Client) -> None:
    # each overview load opens a broker connection: it holds a read slot like any view
    assert client.app is not None
    slots = client.app[GUARD].reads
    while not slots.locked():
        await slots.acquire()
    answer = await client.get("/")
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"


async def test_a_broker_outage_is_logged_once_per_cause_not_per_reload(client: Client) -> None:
    with capture_logs() as lines:
        for _ in range(3):
            assert (await client.get("/")).status == 200
            assert (await client.get("/lots")).status == 200
    failed = sorted(line["source"] for line in lines
                    if line["event"] == "console.source_failed")
    assert failed == ["broker", "lot"]  # every lot's count fails of one cause: one line


def test_a_source_logs_each_new_failure_and_its_recovery_once() -> None:
    sources = guard.Guard()
    with capture_logs() as lines:
        sources.failed("broker", ConnectionRefusedError())
        sources.failed("broker", ConnectionRefusedError())
        sources.failed("broker", TimeoutError())  # a new cause
        sources.answered("broker")
        sources.answered("broker")
        sources.failed("broker", TimeoutError())  # failing again after a recovery
    assert [(line["event"], line.get("error")) for line in lines] == [
        ("console.source_failed", "ConnectionRefusedError"),
        ("console.source_failed", "TimeoutError"),
        ("console.source_recovered", None),
        ("console.source_failed", "TimeoutError")]


async def test_a_failed_count_is_kept_briefly_so_reloads_do_not_each_ask_the_broker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    counts = ReasonCounts(_settings(), guard.Guard(), wait=1.0, failed_ttl=1.0)
    first = await counts.of("unrouted")
    assert first.note.startswith("unavailable")
    opened: list[str] = []
    monkeypatch.setattr(dlq, "open_lot", lambda *a: opened.append("x"))
    assert (await counts.of("unrouted")) is first and opened == []
    await asyncio.sleep(1.1)
    again = await counts.of("unrouted")  # asked again (the stand-in is no context manager)
    assert opened == ["x"] and again.note == "unavailable (TypeError)"


async def test_an_unknown_action_is_refused_before_the_broker(client: Client) -> None:
    csrf = await _csrf(client)
    for path in ("/lot/unrouted/act", "/lot/unrouted/confirm"):
        answer = await client.post(path, data={"csrf": csrf, "action": "drop",
                                               "until": "2026-01-01T00:00:00+00:00"})
        assert answer.status == 400 and "unknown action" in await answer.text()


async def test_an_act_without_the_pinned_until_is_refused(client: Client) -> None:
    csrf = await _csrf(client)
    answer = await client.post("/lot/unrouted/act", data={"csrf": csrf, "action": "purge"})
    assert answer.status == 400 and "until" in await answer.text()
    archive = await client.post("/archive/act", data={"csrf": csrf,
                                                      "since": "2026-01-01T00:00:00"})
    assert archive.status == 400 and "until" in await archive.text()


def _parked(n: int, body: bytes) -> ParkedMessage:
    return ParkedMessage(f"m{n}", f"T{n % 300}", "rejected", "", 1, "default", None, None,
                         None, "", len(body), {"h": "v"}, body)


def test_a_browse_keeps_only_the_page_without_bodies() -> None:
    listing, body = figures.Listing(Filter(), start=200), b"x" * 1024
    for n in range(1000):
        listing.see(_parked(n, body))
    assert listing.matched == 1000 and len(listing.shown) == figures.PAGE
    assert listing.shown[0].message_id == "m200"
    assert all(m.body == b"" and m.headers == {} for m in listing.shown)


def test_the_types_keep_one_sample_for_a_bounded_number_of_types() -> None:
    kinds = figures.Types()
    for n in range(1000):
        kinds.see(_parked(n, b"{}"))
    assert len(kinds.samples) == figures.TYPES and kinds.seen["T0"].count == 4
    assert kinds.more == 1000 - sum(s.count for s in kinds.seen.values())


async def test_a_count_or_a_view_on_a_lot_in_use_says_busy(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.app is not None
    lock = client.app[GUARD].lock("unrouted")
    await lock.acquire()
    counts = ReasonCounts(_settings(), client.app[GUARD], wait=0.1)
    assert (await counts.of("unrouted")).note.startswith("busy")
    monkeypatch.setattr(guard, "VIEW_WAIT", 0.1)
    answer = await client.get("/types")
    assert answer.status == 503 and "busy" in await answer.text()
    lock.release()


async def test_a_failed_lot_job_logs_its_end_with_the_count_and_frees_the_lot() -> None:
    lock = asyncio.Lock()
    await lock.acquire()
    job = lot_jobs.LotJob("unrouted", "purge", Filter(reason="x\x1b[2J"),
                          Actor("write", "127.0.0.1", "abcd0123"), 3)
    with capture_logs() as logged:
        await lot_jobs._run(_settings(), lock, job)
    start, end = [e for e in logged if e["event"] == "console.action"]
    assert (start["action"], start["phase"], start["count"]) == ("purge", "start", None)
    assert (end["action"], end["phase"], end["count"]) == ("purged", "end", 0)
    assert end["error"] and end["confirmed_expected"] == 3 and end["session"] == "abcd0123"
    assert end["filter"] == "reason=x\\x1b[2J" and not lock.locked()
    assert "failed" in job.status()

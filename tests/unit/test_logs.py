"""Log lines: one per recurring cause, and every line of a process one JSON object."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs
from structlog.typing import EventDict

from processor import logs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_recurring_cause_is_logged_once_then_once_per_interval_with_a_count() -> None:
    clock = Clock()
    throttle = logs.Throttle(60.0, clock=clock)
    log = logs.get_logger()
    with capture_logs() as logged:
        for _ in range(100):
            throttle.warning(log, "cache.unavailable", operation="get")
            clock.now += 1.0  # 100 occurrences over 100 s
    assert [(e["event"], e.get("suppressed")) for e in logged] == [
        ("cache.unavailable", None), ("cache.unavailable", 59)]
    assert logged[1]["for_seconds"] == 60.0 and logged[1]["operation"] == "get"


def test_recovery_ends_the_episode_with_one_line_and_the_next_failure_is_news() -> None:
    clock = Clock()
    throttle = logs.Throttle(60.0, clock=clock)
    log = logs.get_logger()
    with capture_logs() as logged:
        throttle.recovered(log, "dedupe.unavailable", "dedupe.recovered")  # never failed
        for _ in range(3):
            throttle.warning(log, "dedupe.unavailable")
        clock.now += 5
        throttle.recovered(log, "dedupe.unavailable", "dedupe.recovered")
        throttle.recovered(log, "dedupe.unavailable", "dedupe.recovered")
        throttle.warning(log, "dedupe.unavailable")
    assert [e["event"] for e in logged] == [
        "dedupe.unavailable", "dedupe.recovered", "dedupe.unavailable"]
    assert logged[1]["occurrences"] == 3 and logged[1]["for_seconds"] == 5.0
    assert logged[1]["log_level"] == "info"


def test_causes_are_counted_apart() -> None:
    throttle = logs.Throttle(60.0, clock=Clock())
    log = logs.get_logger()
    with capture_logs() as logged:
        for _ in range(5):
            throttle.warning(log, "cache.unavailable")
            throttle.warning(log, "budget.redis_unavailable")
    assert [e["event"] for e in logged] == ["cache.unavailable", "budget.redis_unavailable"]


@pytest.fixture
def configured() -> Iterator[None]:
    """``configure`` changes structlog and the root logger for the process: undo both."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    access = logging.getLogger("aiohttp.access").level
    logs.configure("json", "info")
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(access)


def lines(text: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.mark.usefixtures("configured")
def test_a_standard_library_exception_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    [line] = lines(capsys.readouterr().err)
    assert line["event"] == "Task exception was never retrieved"
    assert line["level"] == "error" and line["logger"] == "asyncio"
    assert "Traceback" in line["exception"] and "KeyError: 'missing'" in line["exception"]


@pytest.mark.usefixtures("configured")
def test_configuring_twice_still_writes_each_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "info")
    logging.getLogger("aio_pika.robust_connection").warning("Connection attempt failed")
    logging.getLogger("aiohttp.access").info("127.0.0.1 GET / 200")  # below its level
    [line] = lines(capsys.readouterr().err)
    assert line["logger"] == "aio_pika.robust_connection" and line["level"] == "warning"


@pytest.mark.usefixtures("configured")
async def test_a_client_dropping_mid_body_is_one_info_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def read_all(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    app = web.Application()
    app.router.add_post("/", read_all)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"id\":")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()
        await asyncio.sleep(0.3)
    finally:
        await runner.cleanup()
    [line] = [e for e in lines(capsys.readouterr().err) if e.get("logger") == "aiohttp.server"]
    assert line["level"] == "info" and "exception" not in line
    assert "ConnectionResetError('Connection lost')" in line["event"]


async def test_message_fields_are_added_to_lines_logged_while_handling_and_only_then() -> None:
    merge = logs.merge_message_fields

    async def handling() -> list[EventDict]:
        with logs.MessageFields(event_id="e1", tenant="spa"):
            await asyncio.sleep(0)  # another task runs meanwhile, with fields of its own
            return [merge(None, "info", {"event": "event.enriched"}),
                    merge(None, "info", {"event": "x", "tenant": "own"})]

    async def other() -> EventDict:
        with logs.MessageFields(event_id="e2"):
            return merge(None, "info", {"event": "other"})

    (enriched, own), elsewhere = await asyncio.gather(handling(), other())
    assert enriched == {"event": "event.enriched", "event_id": "e1", "tenant": "spa"}
    assert own["tenant"] == "own"  # a line's own field wins
    assert elsewhere == {"event": "other", "event_id": "e2"}
    assert merge(None, "info", {"event": "after"}) == {"event": "after"}


@pytest.mark.usefixtures("configured")
def test_a_standard_library_line_carries_the_message_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert logs.merge_message_fields in structlog.get_config()["processors"]
    with logs.MessageFields(event_id="e1", handler="membership-freeze"):
        logging.getLogger("aiormq").warning("channel closed")
    [line] = lines(capsys.readouterr().err)
    assert (line["event_id"], line["handler"]) == ("e1", "membership-freeze")

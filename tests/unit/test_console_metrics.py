"""The console's reading of /metrics (processor.console.scrape): parsing, the rate per
handler between two kept samples, a restarted process, an unreachable URL."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from processor.console.scrape import Sample, Scraper, parse, per_minute

TEXT = """# HELP zenoti_events_messages Messages handled by a worker, by handler and outcome.
# TYPE zenoti_events_messages counter
zenoti_events_messages_total{handler="a",outcome="ok"} 120.0
zenoti_events_messages_total{handler="a",outcome="retry"} 9.0
zenoti_events_messages_total{handler="b",outcome="ok"} 4.0
zenoti_events_messages_created{handler="a",outcome="ok"} 1.7e9
# TYPE zenoti_events_in_flight gauge
zenoti_events_in_flight{handler="a"} 2.0
# TYPE zenoti_events_spool_entries gauge
zenoti_events_spool_entries 5.0
# TYPE zenoti_events_spool_oldest_age_seconds gauge
zenoti_events_spool_oldest_age_seconds 30.5
# TYPE other_total counter
other_total 1.0
"""


def test_parse_keeps_ok_in_flight_and_spool() -> None:
    sample = parse(TEXT)
    assert sample.ok == {"a": 120.0, "b": 4.0}
    assert sample.in_flight == {"a": 2.0}
    assert sample.spool == {"zenoti_events_spool_entries": 5.0,
                            "zenoti_events_spool_oldest_age_seconds": 30.5}


def test_parse_refuses_what_is_not_prometheus_text() -> None:
    with pytest.raises(ValueError):
        parse("<html>not metrics</html>\n")


def test_rate_a_minute_and_a_counter_reset() -> None:
    older, newer = Sample(ok={"a": 100.0, "b": 50.0}), Sample(ok={"a": 130.0, "b": 10.0})
    assert per_minute(older, newer, 30.0) == {"a": 60.0, "b": 20.0}
    assert per_minute(older, newer, 0.0) == {}


def test_rates_need_two_samples_apart_and_sum_the_urls() -> None:
    scraper = Scraper(["u1", "u2"], min_gap=5.0, keep=300.0)
    now = time.monotonic()
    scraper.record("u1", now - 10, Sample(ok={"a": 0.0}))
    assert scraper.rates() is None
    scraper.record("u1", now - 8, Sample(ok={"a": 1.0}))
    assert scraper.rates() is None  # 2 s apart: under min_gap
    scraper.record("u1", now, Sample(ok={"a": 10.0}))
    scraper.record("u2", now - 6, Sample(ok={"a": 0.0}))
    scraper.record("u2", now, Sample(ok={"a": 3.0}))
    assert scraper.rates() == pytest.approx({"a": 60.0 + 30.0})


def test_rates_forget_a_url_silent_too_long() -> None:
    scraper = Scraper(["u"], min_gap=1.0, keep=60.0)
    now = time.monotonic()
    scraper.record("u", now - 100, Sample(ok={"a": 0.0}))
    scraper.record("u", now - 90, Sample(ok={"a": 5.0}))
    assert scraper.rates() is None


async def test_an_unreachable_url_is_unavailable_not_an_error() -> None:
    scraper = Scraper(["http://127.0.0.1:9/metrics"], timeout=2.0)
    started = time.monotonic()
    [found] = await scraper.scrape()
    assert found.sample is None and found.error
    assert time.monotonic() - started < 3.0


async def test_an_answer_sent_in_several_segments_is_read_whole() -> None:
    lines = "".join(f'zenoti_events_messages_total{{handler="h{n}",outcome="ok"}} {n}.0\n'
                    for n in range(3000))
    body = ("# TYPE zenoti_events_messages counter\n" + lines).encode()

    async def slowly(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await answer.prepare(request)
        for start in range(0, len(body), 16 * 1024):
            await answer.write(body[start:start + 16 * 1024])
            await asyncio.sleep(0.02)  # the next segment comes later, as over a network
        await answer.write_eof()
        return answer

    app = web.Application()
    app.router.add_get("/metrics", slowly)
    server = TestServer(app)
    await server.start_server()
    try:
        [found] = await Scraper([str(server.make_url("/metrics"))], timeout=5.0).scrape()
    finally:
        await server.close()
    assert found.sample is not None and len(found.sample.ok) == 3000, found.error

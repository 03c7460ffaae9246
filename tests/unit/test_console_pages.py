"""The console's HTML helpers and the overview's spool table: times to the second in UTC,
the nav marking the current page (and absent before a log-in), only sources with a spool."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from processor.console import overview
from processor.console.pages import fields, page, plain, summary, when
from processor.console.scrape import Sample, Scrape


def test_times_read_to_the_second_in_utc() -> None:
    moment = datetime(2026, 12, 3, 9, 48, 33, 824451, tzinfo=timezone(timedelta(hours=2)))
    assert when(moment) == "2026-12-03 07:48:33Z"
    assert when(datetime(2026, 12, 3, 7, 48, 33)) == "2026-12-03 07:48:33Z"  # naive: UTC
    assert when(None) == "-"
    assert plain("2026-12-03T07:48:33.824451+00:00") == "2026-12-03 07:48:33Z"
    assert plain("2026-12-03T07:48 not a time") == "2026-12-03T07:48 not a time"
    assert plain(3) == "3"


def test_the_nav_marks_the_current_page_and_needs_a_log_in() -> None:
    text = page("Parking lots", "", "c", "/lots")
    assert "id='nav-lots' aria-current='page'" in text and text.count("aria-current") == 1
    assert "id='logout' class='link'" in text
    assert "id='nav-lots' aria-current='page'" in page("Message", "", "c", "/lot/a/message")
    login = page("Log in", "<form></form>", None, "/login")
    assert "<nav" not in login and "nav-overview" not in login


def test_the_filter_form_has_labels_and_a_time_hint_and_escapes() -> None:
    text = fields([("event_type", "Event type"), ("since", "Since")],
                  {"event_type": "<b>x</b>"}, "Filter")
    assert "Event type<input name='event_type' value='&lt;b&gt;x&lt;/b&gt;'" in text
    assert "placeholder='2026-12-03T08:00Z'" in text and "id='filter'" in text


def test_the_summary_leaves_out_empty_values_and_escapes() -> None:
    text = summary([("Reason", "permanent"), ("Error", ""), ("Tenant", "<i>t</i>")])
    assert "Error" not in text and "&lt;i&gt;t&lt;/i&gt;" in text


def _spool(limit: float) -> dict[str, float]:
    return dict(zip((n for n, _ in overview._SPOOL), [3, 100, limit, 1.5], strict=True))


def test_the_spool_lists_only_sources_with_a_spool() -> None:
    text = overview._spool([Scrape("http://ingress/metrics", Sample(spool=_spool(1024))),
                            Scrape("http://worker/metrics", Sample(spool=_spool(0))),
                            Scrape("http://other/metrics", Sample())])
    assert "http://ingress/metrics" in text and "worker" not in text and "other" not in text
    alone = overview._spool([Scrape("http://worker/metrics", Sample(spool=_spool(0)))])
    assert "id='spool'" in alone and "No spool" in alone

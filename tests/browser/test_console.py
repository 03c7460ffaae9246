"""The operator's console in headless Chromium, against real processes (sandbox, ingress,
worker, console) on the real broker: what an operator does with parked messages, that
attacker-controlled markup stays text, that an action needs its CSRF token and a write session.
The run keeps a screenshot of each page in ``docs/console/`` (``docs/console.md``)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from processor.broker import topology
from processor.console.auth import COOKIE
from processor.dev.deliveries import FREEZE, Delivery, build_deliveries
from processor.dev.sandbox.organisation import Organisation
from tests.browser.conftest import ENRICHED_QUEUE, READ_TOKEN, WRITE_TOKEN, System
from tests.browser.console import Console
from tests.integration.amqp import depth, drain
from tests.integration.processes import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HANDLER = "membership-freeze"
LOT = topology.dead_queue_name(HANDLER)
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
MARKUP = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


def freezes() -> list[Delivery]:
    """Membership freezes about the sandbox's organisation (seed 1): enrichable there."""
    deliveries = build_deliveries(Organisation.generate(1), 60, seed=16, unknown_ratio=0.0)
    return [d for d in deliveries if d.event_type == FREEZE]


def envelope(event_type: str, data: Any, event_id: str) -> bytes:
    return json.dumps({"id": f"d-{event_id}", "event_id": event_id, "event_type": event_type,
                       "event_timestamp": "2026-12-03T08:00:00.1234567Z", "data": data}).encode()


def retyped(body: bytes, event_type: str) -> bytes:
    return json.dumps({**json.loads(body), "event_type": event_type}).encode()


def vendor(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def deliver(system: System, body: bytes) -> str:
    """Post ``body`` signed to the ingress (202); the message id it is queued under."""
    headers = Delivery(body, "", "").headers(SECRET)
    answer = httpx.post(system.stack.webhook_url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 202, answer.text
    return f"default:{json.loads(body)['event_id']}"


def wait_depth(system: System, queue: str, expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (found := asyncio.run(depth(system.amqp_url, queue))) != expected:
        assert time.monotonic() < deadline, f"{queue} holds {found}, not {expected}"
        time.sleep(0.1)


def enriched(system: System, expected: int = 1) -> list[dict[str, Any]]:
    """What came out on ``zenoti.enriched`` (up to ``expected``, within 20 s), as JSON."""
    out = asyncio.run(drain(system.amqp_url, ENRICHED_QUEUE, expected, timeout=20))
    return [json.loads(m.body) for m in out]


def lots_path(console: Console) -> str:
    """``/lots`` once the console has an overview at ``/``, else ``/``."""
    return "/lots" if console.open("/lots") == 200 else "/"


def replay_through_confirmation(console: Console, expected: str, shot: str = "") -> None:
    """Replay what the list's filter selects: the confirmation says ``expected``; yes."""
    console.submit(console.find("replay"))
    assert expected in console.text()
    if shot:
        console.shoot(shot)
    console.submit(console.find("confirm"))


def test_an_operator_filters_a_lot_opens_a_message_and_replays_it_to_enriched(
    console: Console, system: System,
) -> None:
    """Zenoti refused a revoked API key, so the worker parked a freeze as permanent, beside a
    payload that is not valid. Key fixed, the operator filters the lot by reason, opens the
    message, replays it through the confirmation: it leaves the lot and comes out enriched."""
    system.restart_worker(ZENOTI_EVENTS_API_KEY="revoked-key")
    freeze = freezes()[0]
    parked = deliver(system, freeze.body)
    invalid = vendor("membership-freeze.data.json")  # Zenoti's sample, less a required field
    del invalid["user_membership_id"]
    deliver(system, envelope(FREEZE, invalid, "browser-invalid-1"))
    wait_depth(system, LOT, 2)
    system.restart_worker()  # the right key

    assert console.open("/login") == 200
    console.shoot("login")
    console.log_in(WRITE_TOKEN)
    assert console.open(lots_path(console)) == 200
    console.shoot("lots")
    console.follow(HANDLER)
    assert console.path == f"/lot/{HANDLER}" and console.count() == 2
    console.shoot("lot")

    console.filter(reason="permanent")
    assert console.count() == 1 and "browser-invalid-1" not in console.text()
    console.follow(parked)
    assert console.heading() == f"Message {parked}"
    summary = console.find("summary").text
    assert "Reason\npermanent" in summary and "401" in summary
    assert "x-zenoti-error" not in console.text()  # the error once: not among the headers
    assert freeze.event_id in console.find("body").text
    console.shoot("message")

    console.driver.back()
    replay_through_confirmation(console, f"Replay 1 message(s) from {HANDLER}?", "confirm")
    console.wait_count(0, reason="permanent")
    wait_depth(system, LOT, 1)  # the invalid payload stays
    [out] = enriched(system)
    assert out["event_id"] == freeze.event_id and out["guest"]["id"]


def test_an_unrouted_type_is_mapped_by_its_setting_then_replayed_to_enriched(
    console: Console, system: System,
) -> None:
    """A freeze under a type no handler takes waits in ``unrouted``; the types page names the
    ``HANDLER_EVENT_TYPES`` that routes it; the worker restarted with it, a replay from the
    ``unrouted`` lot reaches the handler and comes out enriched."""
    freeze = freezes()[1]
    parked = deliver(system, retyped(freeze.body, "Membership.Freeze"))
    console.log_in(WRITE_TOKEN)
    console.open("/lot/unrouted")
    console.filter(id=parked)
    assert console.count() == 1

    assert console.open("/types") == 200
    [row] = [r for r in console.driver.find_elements(By.CSS_SELECTOR, "tbody tr")
             if r.find_elements(By.XPATH, "td[1]/a[text()='Membership.Freeze']")]
    assert HANDLER in row.text
    name, value = row.find_element(By.TAG_NAME, "code").text.split("=", 1)
    assert name == "ZENOTI_EVENTS_HANDLER_EVENT_TYPES"
    assert json.loads(value) == {HANDLER: [FREEZE, "Membership.Freeze"]}
    console.shoot("types")

    system.restart_worker(**{name: value})
    console.open("/lot/unrouted")
    console.filter(event_type="Membership.Freeze")
    replay_through_confirmation(console, "Replay 1 message(s) from unrouted?")
    console.wait_count(0, event_type="Membership.Freeze")
    [out] = enriched(system)
    assert out["event_id"] == freeze.event_id


def test_markup_in_an_id_and_an_event_type_is_shown_as_text_and_never_runs(
    console: Console, system: System,
) -> None:
    """A delivery whose event id and type carry a script and HTML: the list and the message
    show the characters themselves; no element of theirs reaches the DOM, nothing runs.
    (The console's CSP would stop an inline script anyway: the DOM is what proves escaping.)"""
    event_type = f"Guest.<b>Bold</b>.{MARKUP}"
    parked = deliver(system, envelope(event_type, {}, f"<i>evt</i>{MARKUP}"))
    console.log_in(WRITE_TOKEN)
    console.open("/lot/unrouted")
    console.filter(event_type=event_type)
    assert console.count() == 1
    assert parked in console.text() and event_type in console.text()
    assert_inert(console)
    console.follow(parked)
    assert console.heading() == f"Message {parked}"
    assert event_type in console.text() and MARKUP in console.find("body").text
    assert_inert(console)
    console.shoot("message-markup")


def assert_inert(console: Console) -> None:
    driver = console.driver
    assert driver.execute_script("return typeof window.pwned") == "undefined"
    assert not driver.find_elements(By.CSS_SELECTOR, "img, b, i")
    scripts = driver.find_elements(By.TAG_NAME, "script")
    assert not [s for s in scripts if "pwned" in (s.get_attribute("textContent") or "")]


def test_an_action_without_its_csrf_token_is_refused_and_moves_nothing(
    console: Console, system: System,
) -> None:
    """The confirmation's form stripped of its hidden CSRF field: 403, still parked."""
    reference = vendor("envelope-reference.json")  # Zenoti's sample: Invoice.Closed, unrouted
    parked = deliver(system, json.dumps(reference).encode())
    console.log_in(WRITE_TOKEN)
    console.open("/lot/unrouted")
    console.filter(id=parked)
    console.submit(console.find("replay"))
    console.driver.execute_script(  # the confirmation's own field (the nav may have another)
        "document.getElementById('confirm').form.querySelector(\"input[name='csrf']\")"
        ".remove()")
    console.submit(console.find("confirm"))
    assert console.status() == 403 and "CSRF" in console.text()
    console.open("/lot/unrouted")
    console.filter(id=parked)
    assert console.count() == 1


def test_a_read_only_session_sees_the_lots_but_cannot_replay_or_purge(
    console: Console, system: System,
) -> None:
    """No replay or purge button; a purge posted all the same, with the session's own CSRF
    token when a page carries one, is refused (403) and the message stays."""
    cancelled = vendor("membership-cancelled.data.json")  # a type no handler takes
    parked = deliver(system, envelope("Guest.Membership.Cancelled", cancelled, "browser-ro-1"))
    console.log_in(READ_TOKEN)
    for lot in (HANDLER, "unrouted"):
        assert console.open(f"/lot/{lot}") == 200 and console.has("filter")
        assert not console.has("replay") and not console.has("purge")
    console.filter(id=parked)
    assert console.count() == 1
    console.follow(parked)
    assert cancelled["member_code"] in console.find("body").text

    console.forge("/lot/unrouted/act", action="purge", id=parked)
    assert console.status() == 403
    console.open("/lot/unrouted")
    console.filter(id=parked)
    assert console.count() == 1


def test_the_overview_and_the_archive_answer_with_the_nav_and_log_out(
    console: Console, system: System,
) -> None:
    console.log_in(WRITE_TOKEN)
    if console.open("/lots") != 200:
        pytest.skip("this console has no overview page yet (the lots are at /)")
    for path in ("/", "/archive"):
        assert console.open(path) == 200, console.text()
        assert all(console.has(f"nav-{page}") for page in ("overview", "lots", "types", "archive"))
        assert console.has("logout")
    console.open("/")
    console.shoot("overview")


def test_the_archive_finds_a_window_of_deliveries_markup_and_all(
    console: Console, system: System,
) -> None:
    """Every delivery of the window, this one's type and id as they came; nothing runs."""
    unfreeze = vendor("membership-unfreeze.data.json")
    parked = deliver(system, envelope(f"Guest.Membership.Unfreeze{MARKUP}", unfreeze,
                                      "browser-archived-1"))
    console.log_in(WRITE_TOKEN)
    if console.open("/archive") != 200:
        pytest.skip("this console has no archive page yet")
    since = datetime.now(UTC) - timedelta(minutes=10)
    console.filter(since=since.isoformat(timespec="seconds"))
    assert "received in" in console.find("found").text
    [row] = [r for r in console.driver.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr")
             if parked in r.text]
    assert f"Guest.Membership.Unfreeze{MARKUP}" in row.text
    assert_inert(console)
    console.shoot("archive")


def test_a_wrong_token_logs_nobody_in(console: Console, system: System) -> None:
    console.open("/login")
    console.find("token").send_keys("not-the-token")
    console.submit(console.find("login"))
    assert console.path == "/login" and "Wrong token." in console.text()
    assert console.driver.get_cookie(COOKIE) is None
    console.open(f"/lot/{HANDLER}")
    assert console.path == "/login"


def test_logging_out_ends_the_session_not_just_the_cookie(
    console: Console, system: System,
) -> None:
    console.log_in(WRITE_TOKEN)
    console.open(f"/lot/{HANDLER}")
    if not console.has("logout"):
        pytest.skip("this console has no log-out button yet")
    cookie = console.driver.get_cookie(COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    console.submit(console.find("logout"))
    assert console.path == "/login"
    console.driver.add_cookie(cookie)  # the old session id, offered again
    console.open("/lot/unrouted")
    assert console.path == "/login"

"""The web console's auth, CSRF, headers and escaping (processor.console), without a broker."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor.cli import main
from processor.console import auth
from processor.console.app import SESSIONS, make_app
from processor.console.auth import COOKIE, LoginThrottle, Sessions, check_tokens, csrf_ok
from processor.console.pages import esc
from processor.settings import Settings


def _settings(**extra: object) -> Settings:
    return Settings(console_token=SecretStr("read-token"),
                    console_write_token=SecretStr("write-token"),
                    console_secure_cookie=False, **extra)  # type: ignore[arg-type]


def test_no_token_no_console() -> None:
    with pytest.raises(ValueError, match="CONSOLE_TOKEN"):
        make_app(Settings())


def test_escaping_makes_markup_inert() -> None:
    assert esc("<script>alert(1)</script>\"'") == (
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;")


def test_sessions_roles_and_csrf() -> None:
    sessions = Sessions(SecretStr("r"), SecretStr("w"))
    assert sessions.log_in("wrong") is None
    read, write = sessions.log_in("r"), sessions.log_in("w")
    assert read and write and read != write
    assert sessions.get(read).role == "read"  # type: ignore[union-attr]
    session = sessions.get(write)
    assert session is not None and session.role == "write"
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None) and not csrf_ok(session, "x")


async def _client(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_login_cookie_headers_and_csrf() -> None:
    client = await _client(make_app(_settings()))
    try:
        page = await client.get("/", allow_redirects=False)
        assert page.status == 303 and page.headers["Location"] == "/login"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        wrong = await client.post("/login", data={"token": "nope"}, allow_redirects=False)
        assert wrong.status == 401 and "Wrong token" in await wrong.text()
        good = await client.post("/login", data={"token": "write-token"},
                                 allow_redirects=False)
        assert good.status == 303
        cookie = good.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "write-token" not in cookie
        lots = await client.get("/lots")
        text = await lots.text()
        assert lots.status == 200 and "unrouted" in text and "token" not in text.lower()
        refused = await client.post("/lot/unrouted/act", data={"action": "purge"})
        assert refused.status == 403
        assert re.search("CSRF", await refused.text())
        anonymous = await client.post("/logout", cookies={COOKIE: "forged"})
        assert anonymous.status == 403  # no session: the POST is refused
    finally:
        await client.close()


async def test_read_only_session_cannot_act() -> None:
    client = await _client(make_app(_settings()))
    try:
        login = await client.post("/login", data={"token": "read-token"},
                                  allow_redirects=False)
        assert client.app is not None
        session = client.app[SESSIONS].get(login.cookies[COOKIE].value)
        assert session is not None and session.role == "read"
        csrf = session.csrf
        answer = await client.post("/lot/unrouted/confirm",
                                   data={"csrf": csrf, "action": "purge"})
        assert answer.status == 403 and "read-only" in await answer.text()
    finally:
        await client.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_when_idle_or_too_old_and_their_number_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    sessions = Sessions(SecretStr("r"), None, clock=clock)
    idle = sessions.log_in("r")
    clock.now += auth.IDLE + 1
    assert sessions.get(idle) is None and sessions.get(idle) is None  # forgotten
    busy = sessions.log_in("r")
    for _ in range(int(auth.LIFETIME // auth.IDLE) + 1):
        clock.now += auth.IDLE - 1
        alive = sessions.get(busy)
    assert alive is None, "active all along, yet over its lifetime"
    monkeypatch.setattr(auth, "MAX_SESSIONS", 3)
    first, *rest = [sessions.log_in("r") for _ in range(4)]
    assert sessions.get(first) is None and all(sessions.get(sid) for sid in rest)


def test_failed_log_ins_are_bounded_per_address_and_overall() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_remote=3, overall=5, window=60, clock=clock)
    for _ in range(3):
        assert throttle.wait("a") == 0
        throttle.failed("a")
    assert throttle.wait("a") == 60 and throttle.wait("b") == 0
    clock.now += 30
    throttle.failed("b")
    throttle.failed("c")
    assert throttle.wait("d") == 30, "five failures from anywhere close the door to all"
    clock.now += 30
    assert throttle.wait("a") == 0 and throttle.wait("d") == 0


def test_start_up_names_every_weak_token_at_once() -> None:
    assert check_tokens(None, None) == [
        "CONSOLE_TOKEN is required (the console has no default credentials)"]
    problems = check_tokens(SecretStr("short"), SecretStr("short"))
    assert len(problems) == 3 and "CONSOLE_WRITE_TOKEN equals CONSOLE_TOKEN" in problems[2]
    assert check_tokens(SecretStr("r" * 16), SecretStr("w" * 16)) == []


async def test_log_ins_past_the_bound_wait_and_other_sites_are_refused() -> None:
    client = await _client(make_app(_settings()))
    try:
        foreign = await client.post("/login", data={"token": "write-token"},
                                    headers={"Origin": "https://evil.example"},
                                    allow_redirects=False)
        assert foreign.status == 403 and "Set-Cookie" not in foreign.headers
        cross = await client.post("/login", data={"token": "write-token"},
                                  headers={"Sec-Fetch-Site": "cross-site"},
                                  allow_redirects=False)
        assert cross.status == 403
        own = await client.post("/login", data={"token": "read-token"}, allow_redirects=False,
                                headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
        assert own.status == 303, "Chromium's own form under no-referrer: Origin null"
        for _ in range(10):
            assert (await client.post("/login", data={"token": "guess"})).status == 401
        late = await client.post("/login", data={"token": "write-token"},
                                 allow_redirects=False)
        assert late.status == 429 and int(late.headers["Retry-After"]) > 0
        assert "Set-Cookie" not in late.headers
    finally:
        await client.close()


async def test_every_answer_carries_the_headers_a_failure_included() -> None:
    app = make_app(_settings())

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a secret in the message")

    app.router.add_get("/broken", broken)
    client = await _client(app)
    try:
        await client.post("/login", data={"token": "read-token"})
        health = await client.get("/healthz", cookies={COOKIE: ""})
        failed = await client.get("/broken")
        missing = await client.get("/no/such/page")
        for answer in (health, failed, missing):
            csp = answer.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
            assert answer.headers["X-Frame-Options"] == "DENY"
            assert answer.headers["Server"] == "zenoti-events"
        assert (health.status, await health.text()) == (200, "ok")
        assert failed.status == 500 and "secret" not in await failed.text()
        assert missing.status == 404
    finally:
        await client.close()


def test_the_console_does_not_start_with_weak_tokens_and_says_each_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_CONSOLE_TOKEN", "tiny")
    monkeypatch.setenv("ZENOTI_EVENTS_CONSOLE_WRITE_TOKEN", "tiny")
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")
    assert main(["console", "--port", "1"]) == 2  # before it listens
    logged = capsys.readouterr().err
    assert "CONSOLE_TOKEN is shorter" in logged and "equals CONSOLE_TOKEN" in logged
    assert "tiny" not in logged

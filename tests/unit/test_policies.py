"""``zenoti-events topology``'s management API client, against a local aiohttp server: no
credential in an error or a log line whatever the API answers (a redirect is not followed: it
would carry them elsewhere, and aiohttp's redirect errors quote the request's headers); the
broker's credentials neither in clear beside an ``amqps://`` broker nor to another host; and
the command's exit code when the API refuses (non-zero) or is away (0, a warning)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import SecretStr
from yarl import URL

from processor import cli, wiring
from processor.broker import topology
from processor.errors import ConfigError
from processor.logs import get_logger
from processor.ops import policies
from processor.ops.policies import Management, PolicyError, PolicyRefused
from processor.settings import Settings

PASSWORD = "s3cret-Pa55"
PAIR = base64.b64encode(f"zen:{PASSWORD}".encode()).decode()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def settings(amqp: str, management: str | None) -> Settings:
    return Settings(amqp_url=SecretStr(amqp),
                    management_url=SecretStr(management) if management else None)


def where(amqp: str, management: str | None = None) -> tuple[str, str, str, str]:
    api = Management.of(settings(amqp, management))
    return api.base, api.user, api.password, api.vhost


# -- where the API is, and as whom ------------------------------------------------------------

def test_the_broker_credentials_go_only_to_the_brokers_own_host() -> None:
    assert where("amqps://u:p@rabbit/v", "https://rabbit:15671") == (
        "https://rabbit:15671", "u", "p", "v")
    assert where("amqp://u:p@rabbit/", "http://u@rabbit:15672") == (
        "http://rabbit:15672", "u", "p", "/")  # its own user named: no mix
    assert where("amqp://u:p@a/,amqp://w:q@b/", "http://B:15672") == (
        "http://b:15672", "w", "q", "/")  # the address on that host, with its credentials
    assert where("amqp://rabbit/", "http://elsewhere:15672") == (
        "http://elsewhere:15672", "guest", "guest", "/")  # nothing of ours to send
    assert where("amqp://u:p@rabbit/", "https://admin:s@mgmt.internal/rabbit/") == (
        "https://mgmt.internal/rabbit", "admin", "s", "/")  # its own, complete


@pytest.mark.parametrize(("amqp", "management", "says"), [
    ("amqps://u:p@rabbit/", "http://rabbit:15672", "in clear"),
    ("amqps://u:p@rabbit/", "http://admin:other@rabbit:15672", "in clear"),
    ("amqp://u:p@rabbit/", "https://admin@other-host", "host is none of AMQP_URL's"),
    ("amqp://u:p@rabbit/", "https://other-host:15671", "host is none of AMQP_URL's"),
    ("amqp://u:p@rabbit/", "https://admin@rabbit:15671", "not AMQP_URL's user"),
    ("amqp://u:p@rabbit/", "https://:pw@rabbit:15671", "a password without a user"),
    ("amqp://u:p@rabbit/", "ftp://rabbit", "not an http"),
    ("amqp://u:p@rabbit/", "http://rabbit:99999", "valid port"),
])
def test_a_url_that_would_leak_credentials_is_refused(amqp: str, management: str,
                                                      says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        Management.of(settings(amqp, management))
    assert "p@" not in str(caught.value) and ":pw" not in str(caught.value)


def test_ipv6_hosts_are_bracketed() -> None:
    assert where("amqp://u:p@[fd00::5]:5672/")[0] == "http://[fd00::5]:15672"
    assert where("amqps://u:p@[::1]/")[0] == "https://[::1]:15671"
    assert where("amqp://u:p@[fd00::5]/", "http://[FD00::5]:15672") == (
        "http://[fd00::5]:15672", "u", "p", "/")
    assert where("amqp://u:p@rabbit/", "https://a:b@[fd00::6]:443/x")[0] == (
        "https://[fd00::6]:443/x")


def test_the_password_is_not_in_the_repr() -> None:
    api = Management.of(settings(f"amqp://zen:{PASSWORD}@rabbit/", None))
    assert PASSWORD not in repr(api) and api.password == PASSWORD


def test_an_error_is_described_without_the_request() -> None:
    """aiohttp's response errors carry the request, headers included, in their repr."""
    info = aiohttp.RequestInfo(URL("http://rabbit/api"), "PUT",
                               CIMultiDictProxy(CIMultiDict(Authorization=f"Basic {PAIR}")),
                               URL("http://rabbit/api"))
    exc = aiohttp.TooManyRedirects(info, (), status=301)
    assert PAIR in repr(exc)  # what the old error message held
    assert policies.describe(exc) == "TooManyRedirects: HTTP 301"
    assert policies.describe(TimeoutError()) == "TimeoutError: no answer within 10 s"


# -- over HTTP --------------------------------------------------------------------------------

async def serve(port: int, handler: Handler) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def api(unused_tcp_port: int) -> AsyncIterator[Callable[[Handler], Awaitable[Settings]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> Settings:
        runners.append(await serve(unused_tcp_port, handler))
        return settings(f"amqp://zen:{PASSWORD}@127.0.0.1/",
                        f"http://127.0.0.1:{unused_tcp_port}")

    yield start
    for runner in runners:
        await runner.cleanup()


def no_credential(*texts: Any) -> None:
    for text in texts:
        shown = json.dumps(text, default=repr) if not isinstance(text, str) else text
        assert PASSWORD not in shown and PAIR not in shown, shown


async def test_a_redirect_is_not_followed_and_leaks_no_credential(
    api: Callable[[Handler], Awaitable[Settings]],
) -> None:
    seen: list[str] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        raise web.HTTPMovedPermanently(location=str(request.rel_url))  # to itself

    configured = await api(redirect)
    with structlog.testing.capture_logs() as logged, pytest.raises(PolicyRefused) as caught:
        await policies.ensure(configured, get_logger(test="policies"))
    assert len(seen) == 1, "the redirect was followed"
    assert caught.value.status == 301 and caught.value.exit_code == 2
    assert "HTTP 301" in str(caught.value) and "redirect, not followed" in str(caught.value)
    assert caught.value.__cause__ is None
    no_credential(str(caught.value), repr(caught.value), logged)
    [said] = [e for e in logged if e["event"] == "topology.policies_refused"]
    assert said["log_level"] == "error" and said["commands"][0].startswith("rabbitmqctl")


async def test_an_answer_that_echoes_the_request_is_redacted(
    api: Callable[[Handler], Awaitable[Settings]],
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        return web.Response(status=400, text=f"bad: {request.headers['Authorization']}\r\n")

    configured = await api(echo)
    with structlog.testing.capture_logs() as logged, pytest.raises(PolicyRefused) as caught:
        await policies.ensure(configured, get_logger(test="policies"))
    assert "bad: Basic ***" in str(caught.value) and "\r" not in str(caught.value)
    no_credential(str(caught.value), logged)


def run_topology(monkeypatch: pytest.MonkeyPatch, management: str) -> int:
    """``zenoti-events topology`` as the CLI runs it, the broker's part left out (the policies
    are what this tests)."""
    async def declare_topology(configured: Settings) -> list[topology.Binding]:
        await policies.ensure(configured, get_logger(component="topology"))
        return []

    monkeypatch.setattr(wiring, "declare_topology", declare_topology)
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", f"amqp://zen:{PASSWORD}@127.0.0.1/")
    monkeypatch.setenv("ZENOTI_EVENTS_MANAGEMENT_URL", management)
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")
    return cli.main(["topology"])


@pytest.mark.parametrize(("status", "code"), [(401, 2), (403, 2), (404, 2), (500, 1)])
def test_the_command_fails_when_the_api_refuses(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], unused_tcp_port: int,
    status: int, code: int,
) -> None:
    loop = asyncio.new_event_loop()

    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "no", "reason": "refused"}, status=status)

    runner = loop.run_until_complete(serve(unused_tcp_port, refuse))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert run_topology(monkeypatch, f"http://127.0.0.1:{unused_tcp_port}") == code
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
    out = capfd.readouterr()
    assert "topology.policies_refused" in out.out + out.err
    assert f"HTTP {status}" in out.out + out.err
    no_credential(out.out, out.err)


def test_the_command_passes_with_a_warning_when_the_api_is_away(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], unused_tcp_port: int,
) -> None:
    assert run_topology(monkeypatch, f"http://127.0.0.1:{unused_tcp_port}") == 0
    out = capfd.readouterr()
    assert "topology.policies_not_applied" in out.out + out.err
    assert "rabbitmqctl set_policy" in out.out + out.err
    no_credential(out.out, out.err)


def test_a_url_that_would_leak_stops_the_command_before_the_broker(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", f"amqps://zen:{PASSWORD}@127.0.0.1/")
    monkeypatch.setenv("ZENOTI_EVENTS_MANAGEMENT_URL", "http://127.0.0.1:15672")
    monkeypatch.setattr(wiring, "declare_topology", None)  # never reached
    assert cli.main(["topology"]) == 2
    out = capfd.readouterr()
    assert "in clear" in out.out + out.err
    no_credential(out.out, out.err)


async def test_an_api_that_is_away_is_a_policy_error_not_a_refusal(
    unused_tcp_port: int,
) -> None:
    away = settings(f"amqp://zen:{PASSWORD}@127.0.0.1/", f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(PolicyError) as caught:
        await policies.apply(policies.policies_for(away), Management.of(away))
    assert not isinstance(caught.value, PolicyRefused)
    assert "ClientConnectorError" in str(caught.value)
    no_credential(str(caught.value))

"""The sandbox as an HTTP server: Zenoti's API with its auth, its rate limit and its bad days.

``Sandbox.app`` builds the aiohttp application, ``SandboxServer`` binds it to a socket and
``run_sandbox`` serves until cancelled (``zenoti-events sandbox``). Each API call, in order:
is counted, waits the configured latency, needs ``Authorization: apikey <key>`` (else 401),
takes a token from its key's bucket (else 429), draws a fault (429, 5xx or a hang), and is
answered; every API response carries the rate-limit headers. Paths under ``/_sandbox/``
are the sandbox's own: no auth, no budget, not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

from aiohttp import web

from processor.dev.sandbox import lists, payloads
from processor.dev.sandbox.api import ENDPOINTS, METHODS, Call, ZenotiApi, route
from processor.dev.sandbox.budget import Budget, Clock, Grant
from processor.dev.sandbox.config import SandboxConfig
from processor.dev.sandbox.faults import Fault, Faults
from processor.dev.sandbox.lists import NOW
from processor.dev.sandbox.organisation import Organisation
from processor.dev.sandbox.payloads import Json
from processor.logs import get_logger

_DENIED = payloads.error(401, "Authorization has been denied for this request.")
_THROTTLED = payloads.error(429, "Rate limit exceeded")
_NO_ROUTE = payloads.error(404, "No HTTP resource was found that matches the request URI.")


@dataclass
class SandboxStats:
    """Counts since start or the last reset; ``sum(by_endpoint.values()) == calls``."""

    calls: int = 0
    throttled: int = 0  # every 429, from the bucket or from a fault
    unauthorized: int = 0
    by_endpoint: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(ENDPOINTS, 0)))
    faults: Counter[str] = field(default_factory=lambda: Counter({f.value: 0 for f in Fault}))

    def as_json(self) -> Json:
        return {"calls": self.calls, "throttled": self.throttled,
                "unauthorized": self.unauthorized, "by_endpoint": dict(self.by_endpoint),
                "faults": dict(self.faults)}


class Sandbox:
    """The state of one sandbox (organisation, budget, faults, stats) and its handlers."""

    def __init__(self, config: SandboxConfig, org: Organisation | None = None,
                 clock: Clock = time.monotonic) -> None:
        config.check()
        self.config = config
        self.org = org or Organisation.generate(config.seed, guests=config.guests,
                                                centers=config.centers)
        self.api = ZenotiApi(self.org, config.list_keys, config.status_names)
        self.budget = Budget(config.calls_per_window, config.window_seconds, clock)
        self.faults = Faults(throttle_rate=config.throttle_rate, error_rate=config.error_rate,
                             timeout_rate=config.timeout_rate, latency_ms=config.latency_ms,
                             seed=config.seed)
        self.stats = SandboxStats()

    def app(self) -> web.Application:
        """A new aiohttp application serving this sandbox."""
        app = web.Application()
        app.router.add_get("/_sandbox/health", self._health)
        app.router.add_get("/_sandbox/stats", self._stats)
        app.router.add_post("/_sandbox/reset-stats", self._reset_stats)
        app.router.add_post("/_sandbox/reset-budget", self._reset_budget)
        app.router.add_post("/_sandbox/memberships/{id}", self._change_membership)
        app.router.add_route("*", "/{path:.*}", self._api)
        return app

    async def _change_membership(self, request: web.Request) -> web.Response:
        """Change a membership's fields from now on (e.g. freeze it), as Zenoti's state would;
        an optional ``changed_at`` (ISO, the sandbox's local time) dates it in the change log,
        else the sandbox's now."""
        changes = await request.json()
        if not isinstance(changes, dict):
            return web.json_response({"error": "a JSON object of fields is required"}, status=400)
        try:
            at = lists.moment(changes, "changed_at", NOW) or NOW
        except lists.BadQuery as problem:
            return web.json_response({"error": problem.message}, status=400)
        fields = {k: v for k, v in changes.items() if k != "changed_at"}
        self.api.change_membership(request.match_info["id"], fields, at)
        return web.json_response({"changed": request.match_info["id"]})

    def api_key(self, request: web.Request) -> str | None:
        """The key of ``Authorization: apikey <key>`` if the sandbox accepts it, else None."""
        scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "apikey" or not key:
            return None
        if self.config.api_keys and key not in self.config.api_keys:
            return None
        return key

    async def _api(self, request: web.Request) -> web.Response:
        call = route(request.path, request.query)
        self.stats.calls += 1
        self.stats.by_endpoint[call.endpoint if call else "unknown"] += 1
        latency = self.faults.latency()
        if latency:
            await asyncio.sleep(latency)
        key = self.api_key(request)
        if key is None:
            self.stats.unauthorized += 1
            return self._json(401, _DENIED, self.budget.full())
        grant = self.budget.take(key)
        if not grant.allowed:
            return self._throttled(grant)
        return await self._faulted(request, call, grant)

    async def _body(self, request: web.Request) -> object:
        """A POST's JSON body, ``None`` when it has none or it is not JSON."""
        if not request.can_read_body:
            return None
        try:
            return await request.json()
        except ValueError:
            return None

    async def _faulted(self, request: web.Request, call: Call | None, grant: Grant) -> web.Response:
        """Answer a call that had a token: with its fault if it draws one, else normally."""
        fault = self.faults.draw()
        if fault is not None:
            self.stats.faults[fault.value] += 1
        if fault is Fault.THROTTLE:
            retry_after = self.config.throttle_retry_after or max(1, grant.reset_seconds)
            refused = replace(grant, allowed=False, retry_after=retry_after)
            return self._throttled(refused)
        if fault is Fault.ERROR:
            status = self.faults.error_status()
            return self._json(status, payloads.error(status, "An error has occurred."), grant)
        if fault is Fault.HANG:
            await asyncio.sleep(self.config.hang_seconds)
        return await self._answer(request, call, grant)

    async def _answer(self, request: web.Request, call: Call | None,
                      grant: Grant) -> web.Response:
        if call is None:
            return self._json(404, _NO_ROUTE, grant)
        if request.method != METHODS[call.endpoint]:
            return self._json(405, payloads.error(405, "Method not allowed"), grant)
        if request.method == "POST":
            call = replace(call, body=await self._body(request))
        answer = self.api.answer(call)
        return self._json(answer.status, answer.body, grant)

    def _throttled(self, grant: Grant) -> web.Response:
        self.stats.throttled += 1
        return self._json(429, _THROTTLED, grant)

    def _json(self, status: int, body: Json, grant: Grant) -> web.Response:
        return web.json_response(body, status=status, headers=self.budget.headers(grant))

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "seed": self.config.seed,
                                  "guests": len(self.org.guests),
                                  "centers": len(self.org.centers)})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.stats = SandboxStats()
        return web.json_response(self.stats.as_json())

    async def _reset_budget(self, request: web.Request) -> web.Response:
        """Refill every bucket (sandbox-only: lets test cases start from a full budget)."""
        self.budget = Budget(self.config.calls_per_window, self.config.window_seconds,
                             self.budget.clock)
        return web.json_response({"status": "ok"})


class SandboxServer:
    """A ``Sandbox`` bound to ``config.host:config.port`` (port 0 picks a free one).

    ``start`` returns the base URL, e.g. ``http://127.0.0.1:8090``; use it as
    ``async with SandboxServer(config) as server: ... server.url``.
    """

    def __init__(self, config: SandboxConfig, org: Organisation | None = None) -> None:
        self.sandbox = Sandbox(config, org)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        # handler_cancellation: a hung call stops when its client gives up, so that
        # stopping the server does not wait out every hang.
        runner = web.AppRunner(self.sandbox.app(), handler_cancellation=True,
                               shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self.sandbox.config.host, self.sandbox.config.port).start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


async def run_sandbox(config: SandboxConfig, *, ready: asyncio.Event | None = None) -> None:
    """Serve the sandbox until cancelled; set ``ready`` once it accepts connections."""
    async with SandboxServer(config) as server:
        get_logger(component="sandbox").info(
            "sandbox.listening", url=server.url, seed=config.seed,
            guests=len(server.sandbox.org.guests), calls_per_window=config.calls_per_window,
            window_seconds=config.window_seconds)
        if ready is not None:
            ready.set()
        await asyncio.get_running_loop().create_future()  # only cancellation ends this

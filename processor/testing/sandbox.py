"""``ZenotiSandbox``: the project's sandbox Zenoti over real HTTP, and clients that talk to it.

The sandbox (``processor.dev.sandbox``) serves Zenoti's REST API over a deterministic synthetic
organisation, with Zenoti's auth and rate limit. Here it runs on a free port of 127.0.0.1 in a
thread of its own, with its own event loop: one sandbox serves tests on any event loop, and a
pytest session starts it once (the ``zenoti_sandbox`` fixture).

``client()`` gives the real ``ZenotiClient`` the worker uses, over a real HTTP connection pool,
with a fresh API key: every client has its own sandbox rate-limit bucket and its own budget
(60 calls a minute, as Zenoti's), so tests never throttle each other.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from pydantic import SecretStr

from processor.dev.deliveries import KNOWN_TYPES, build_deliveries
from processor.dev.sandbox import Organisation, SandboxConfig, SandboxServer, SandboxStats
from processor.metrics import Metrics
from processor.zenoti.budget import TokenBucket
from processor.zenoti.client import ZenotiClient

if TYPE_CHECKING:
    from processor.dev.deliveries import Delivery

_START_SECONDS = 30.0
_WEBHOOKS = 300  # about a hundred of each kind the sandbox makes


class ZenotiSandbox:
    """A sandbox Zenoti served from a background thread; ``with ZenotiSandbox() as sandbox``.

    ``config`` defaults to the sandbox's own defaults on a free port (``port=0``); give one
    with faults (``error_rate``, ``throttle_rate``...) to test a handler on Zenoti's bad days.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig(port=0)
        self.url = ""
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        """Serve until ``stop``; returns the base URL once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this sandbox is already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,),
                                        name="zenoti-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(_START_SECONDS) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the sandbox Zenoti did not start: {self._error!r}")
        return self.url

    def stop(self) -> None:
        """Stop serving and join the thread (a no-op when not started)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(_START_SECONDS)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def org(self) -> Organisation:
        """The organisation served: its centers, guests, invoices, memberships, packages."""
        return self._running().sandbox.org

    @property
    def stats(self) -> SandboxStats:
        """API calls answered since start, by endpoint (``stats.by_endpoint``), 429s, faults."""
        return self._running().sandbox.stats

    def webhook(self, event_type: str, index: int = 0) -> dict[str, Any]:
        """The ``index``-th webhook body of ``event_type`` about this organisation, as Zenoti
        sends it (the envelope, ``data`` naming records the sandbox serves); a new dict each
        time. ``ValueError`` for a type the sandbox does not make (then build one with
        ``processor.testing.envelope``)."""
        if event_type not in KNOWN_TYPES:
            raise ValueError(f"the sandbox makes webhooks of {list(KNOWN_TYPES)}, "
                             f"not {event_type!r}")
        bodies = [d.body for d in self._deliveries if d.event_type == event_type]
        body: dict[str, Any] = json.loads(bodies[index])
        return body

    @asynccontextmanager
    async def client(self, tenant: str, *, api_key: str | None = None,
                     **options: Any) -> AsyncIterator[ZenotiClient]:
        """A ``ZenotiClient`` of ``tenant`` talking to this sandbox over its own connection
        pool, closed on exit. ``api_key`` defaults to a fresh one (a fresh rate-limit bucket);
        ``options`` go to ``ZenotiClient`` (``retries``, ``deadline``, ``cache``...)."""
        key = api_key or f"kit-{uuid.uuid4().hex}"
        budget = TokenBucket(self.config.calls_per_window, self.config.window_seconds)
        async with httpx.AsyncClient(base_url=self._running_url()) as http:
            yield ZenotiClient(http, tenant=tenant, api_key=SecretStr(key), budget=budget,
                               metrics=Metrics(), **options)

    @cached_property
    def _deliveries(self) -> list[Delivery]:
        return build_deliveries(self.org, _WEBHOOKS, self.config.seed, unknown_ratio=0.0)

    def _running(self) -> SandboxServer:
        if self._server is None:
            raise RuntimeError("the sandbox is not started: use `with ZenotiSandbox() as ...`")
        return self._server

    def _running_url(self) -> str:
        self._running()
        return self.url

    def _serve(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except Exception as exc:  # reported by start(), never as a thread's traceback
            self._error = exc
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with SandboxServer(self.config) as server:
            self._server, self.url = server, server.url
            ready.set()
            await self._stop.wait()
        self._server = None

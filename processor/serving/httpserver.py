"""aiohttp's HTTP server with the time and count bounds it lacks: the ingress and probes use it.

aiohttp bounds neither the time a client may take over a request's headers nor the number of
connections open at once, and its shutdown waits up to a minute for each busy connection.
A server started here, within its ``Limits``:

- headers: a request's line and headers must be in within ``header_timeout``, counted from the
  connection's opening for the first request and from the first byte of the next one on a
  kept-alive connection; else the client gets a 408 and the connection is closed. Reading the
  body is the handler's business (the ingress gives it its own deadline).
- idle: a kept-alive connection that starts no next request is closed after
  ``keepalive_timeout`` (aiohttp's own timer).
- count: at most ``max_connections`` open at once for any request, and up to
  ``probe_connections`` more, a reserve for the paths ``start`` is given as probe paths (the
  kubelet's probes and Prometheus must be answered when clients fill the rest, or the pod is
  restarted for being busy). A connection taken in the reserve is served only requests for a
  probe path; any other request on it is answered 503 and the connection closed once its
  headers are in (within ``header_timeout``). With the reserve full as well, one more
  connection is answered 503 and closed at once, never queued.
- shutdown: ``Server.cleanup()`` stops listening, lets in-flight requests finish, and closes
  every connection still open ``shutdown_grace`` after it began, whatever the clients do.

With ``metrics``, the open connections (of either kind), the 503 refusals and the 408 header
timeouts are counted there.

The connections are aiohttp's ``RequestHandler`` (a subclass of it), made by our own protocol
factory on aiohttp's low-level server, so routing, parsing and responses stay aiohttp's.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_request import BaseRequest

from processor.metrics import Metrics

_REFUSED = "too_many_connections"
_RETRY_AFTER = "1"


@dataclass(frozen=True)
class Limits:
    """The bounds of one server, in seconds and connections (see the module docstring)."""

    header_timeout: float = 5.0
    # Longer than the usual balancer idle timeout (60 s), so that the balancer closes an idle
    # connection first and never sends a request on one we are closing.
    keepalive_timeout: float = 75.0
    max_connections: int = 1000
    probe_connections: int = 16
    shutdown_grace: float = 10.0
    # After an answer given before the body was read in full (408, 413), aiohttp reads and
    # drops the rest for this long so that the client sees the answer, not a reset; its
    # default, 10 s, would hold a slow client's connection that long after its 408.
    lingering_time: float = 1.0


class Server:
    """A running server; ``cleanup()`` stops it. Made by ``start``."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.AbstractServer,
                 limits: Limits) -> None:
        self._runner = runner
        self._listener = listener
        self._limits = limits

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one chosen for port 0)."""
        sockets = cast(asyncio.Server, self._listener).sockets
        port: int = sockets[0].getsockname()[1]
        return port

    async def cleanup(self) -> None:
        """Stop taking connections, let in-flight requests finish, and return within
        ``shutdown_grace`` plus what the app's handlers take to notice their connection closed:
        at the grace every connection still open is closed, whatever its client is doing
        (a body or an answer still in transit). Idle connections close at once."""
        self._listener.close()
        server = self._runner.server
        loop = asyncio.get_running_loop()
        watchdog = loop.call_later(self._limits.shutdown_grace, _close_all, server)
        try:
            # aiohttp's shutdown waits for busy connections; closing them at the grace is
            # what ends that wait when a client holds its request open.
            await self._runner.cleanup()
        finally:
            watchdog.cancel()


async def start(app: web.Application, host: str, port: int, limits: Limits,
                metrics: Metrics | None = None, probe_paths: Collection[str] = ()) -> Server:
    """Serve ``app`` on ``host:port`` within ``limits``, keeping ``limits.probe_connections``
    over the cap for requests to ``probe_paths`` (no reserve without them). With ``metrics``,
    open and refused connections and header timeouts are counted there. The app's
    ``handler_args`` are not used: the connections take their settings from ``limits`` alone."""
    # aiohttp counts a shutdown timeout of 0 as none at all; ours means "close at once".
    grace = max(limits.shutdown_grace, 0.001)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=grace)
    await runner.setup()
    manager = runner.server
    assert manager is not None  # set by setup()
    reserve = limits.probe_connections if probe_paths else 0
    gate = _Gate(limits.max_connections, reserve, probe_paths, metrics)
    late = _raw_answer(408, "Request Timeout", "header_timeout",
                       f"request headers not received within {limits.header_timeout:g} s")
    loop = asyncio.get_running_loop()

    def connection() -> _Connection:
        return _Connection(manager, loop=loop, gate=gate, header_timeout=limits.header_timeout,
                           late_answer=late, keepalive_timeout=limits.keepalive_timeout,
                           lingering_time=limits.lingering_time, access_log=None,
                           # Bodies are signed as sent: inflating one before anything is
                           # checked would let anyone spend our CPU (a gzip bomb).
                           auto_decompress=False)

    try:
        listener = await loop.create_server(connection, host, port, reuse_address=True,
                                            backlog=128)
    except BaseException:
        await runner.cleanup()
        raise
    return Server(runner, listener, limits)


class _Slot(enum.Enum):
    """What an admitted connection may ask for."""

    ANY = "any"  # under max_connections
    PROBES = "probes"  # in the reserve over it: probe paths only


class _Gate:
    """Admits connections: any request under the limit, probes alone in the reserve over it;
    counts them, the refusals and the header timeouts."""

    def __init__(self, limit: int, reserve: int, probe_paths: Collection[str],
                 metrics: Metrics | None) -> None:
        self.limit = limit
        self.reserve = reserve
        self.probe_paths = frozenset(probe_paths)
        self.open = 0
        self.reserved = 0
        self._metrics = metrics
        self.message = (f"{limit} connections are open, the most this server takes; "
                        "retry later")
        self.refusal = _raw_answer(503, "Service Unavailable", _REFUSED, self.message,
                                   (f"Retry-After: {_RETRY_AFTER}",))

    def enter(self) -> _Slot | None:
        """The slot of a new connection, or None when it is to be refused."""
        if self.open < self.limit:
            self.open += 1
            slot = _Slot.ANY
        elif self.reserved < self.reserve:
            self.reserved += 1
            slot = _Slot.PROBES
        else:
            self.refused()
            return None
        self._show()
        return slot

    def leave(self, slot: _Slot) -> None:
        if slot is _Slot.ANY:
            self.open -= 1
        else:
            self.reserved -= 1
        self._show()

    def refused(self) -> None:
        if self._metrics is not None:
            self._metrics.ingress_connections_refused.inc()

    def timed_out(self) -> None:
        if self._metrics is not None:
            self._metrics.ingress_header_timeouts.inc()

    async def refuse(self, _: BaseRequest) -> web.StreamResponse:
        """The answer to a request that is not a probe's, on a connection in the reserve."""
        self.refused()
        response = web.json_response({"error": _REFUSED, "message": self.message}, status=503,
                                     headers={"Retry-After": _RETRY_AFTER})
        response.force_close()
        return response

    def _show(self) -> None:
        if self._metrics is not None:
            self._metrics.ingress_connections_open.set(self.open)
            self._metrics.ingress_probe_connections_open.set(self.reserved)


class _Connection(web.RequestHandler):
    """One client connection: aiohttp's, plus the gate and the header deadline."""

    __slots__ = ("_answered", "_gate", "_header_timeout", "_header_timer", "_late_answer",
                 "_parsed", "_slot", "_time_next_request")

    def __init__(self, manager: web.Server, *, gate: _Gate, header_timeout: float,
                 late_answer: bytes, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._slot: _Slot | None = None  # None until admitted, and once gone
        self._parsed = 0  # requests whose headers are in
        self._answered = 0  # requests answered
        self._time_next_request = False
        self._late_answer = late_answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._slot = self._gate.enter()
        if self._slot is None:
            # Refused before aiohttp sees it: nothing of it is registered or started.
            cast(asyncio.Transport, transport).write(self._gate.refusal)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._slot is None:
            return
        self._gate.leave(self._slot)
        self._slot = None
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._slot is None:
            return
        if self._time_next_request and data:
            self._time_next_request = False
            self._arm()
        super().data_received(data)
        # aiohttp counts a request as soon as its headers are parsed (``_request_count``, a
        # private of aiohttp 3.x's RequestHandler): the only sign that the header phase ended.
        if self._request_count != self._parsed:
            self._parsed = self._request_count
            self._disarm()

    async def _handle_request(
        self, request: BaseRequest, start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        # The one place where aiohttp hands over a parsed request with its handler (a private
        # of aiohttp 3.x's RequestHandler): a connection in the probes' reserve is let through
        # to the app only for a probe path, so the app never sees what it was not admitted for.
        if self._slot is _Slot.PROBES and request.path not in self._gate.probe_paths:
            request_handler = self._gate.refuse
        return await super()._handle_request(request, start_time, request_handler)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answer = await super().finish_response(request, resp, start_time)
        self._answered += 1
        # The next request's headers are timed from its first byte, so that an idle kept-alive
        # connection is left to ``keepalive_timeout``. Not when the connection is closing, when
        # a parsed request already waits (pipelined), or when the body was left unread (aiohttp
        # then reads and drops the rest, and closes the connection unless it all came).
        self._time_next_request = (
            bool(resp.keep_alive) and self._answered == self._parsed
            and request.content.is_eof()
        )
        return answer

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        # Armed only while no request is being handled, so the connection is ours to answer.
        if self.transport is not None:
            self.transport.write(self._late_answer)
        self._gate.timed_out()
        self.force_close()


def _close_all(server: web.Server | None) -> None:
    for connection in server.connections if server is not None else ():
        connection.force_close()


def _raw_answer(status: int, reason: str, code: str, message: str,
                headers: tuple[str, ...] = ()) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with the ingress's JSON error body;
    written straight to the transport where aiohttp has no request to answer."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body

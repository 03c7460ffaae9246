"""``/healthz``, ``/readyz`` and ``/metrics``: the same three routes on the ingress and worker,
and ``serve``, which starts either's HTTP server within its time and connection bounds.

``/healthz`` answers 200 while the event loop runs; ``/readyz`` answers 200 only while the
process can do its job (ingress: a confirm channel is open; worker: consuming), else 503.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from processor.metrics import CONTENT_TYPE_LATEST, Metrics
from processor.serving.httpserver import Limits, Server, start

__all__ = ["PATHS", "Limits", "Server", "add_routes", "serve"]

# The routes ``add_routes`` adds: the ones still served over the connection cap (``serve``).
PATHS = ("/healthz", "/readyz", "/metrics")


def add_routes(app: web.Application, metrics: Metrics, ready: Callable[[], bool]) -> None:
    """Add the probe routes to ``app``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics_route(_: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    for path, route in zip(PATHS, (healthz, readyz, metrics_route), strict=True):
        app.router.add_get(path, route)


async def serve(app: web.Application, host: str, port: int, limits: Limits | None = None,
                metrics: Metrics | None = None) -> Server:
    """Start ``app`` on ``host:port`` within ``limits`` (the defaults when none: see
    ``httpserver``); the caller cleans the returned server up, which takes at most the
    limits' shutdown grace. Requests for ``PATHS`` are still served when ``max_connections``
    are open, on up to ``probe_connections`` more. With ``metrics``, open and refused
    connections and header timeouts are counted."""
    return await start(app, host, port, limits or Limits(), metrics, probe_paths=PATHS)

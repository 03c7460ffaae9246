"""The HTTP ingress: verify a Zenoti delivery, publish it with a confirm, then answer.

Per delivery (``POST|PUT|PATCH /webhooks/zenoti[/{tenant}]``):

1. unknown tenant -> 404; body over ``max_body_bytes`` -> 413
2. empty body -> 200, nothing published (Zenoti's unsigned "test trigger")
3. ``zenoti-webhook-signature`` checked against the tenant's secrets -> 401
4. the envelope parsed -> 400 naming the problem
5. the raw bytes published to ``zenoti.events`` (routing key = normalised event type), and
   202 only after the broker's confirm; no confirm within ``confirm_timeout`` -> 503 with
   ``Retry-After``, so Zenoti sends it again. Never a 2xx for an unconfirmed message.

Errors are JSON: ``{"error": "<code>", "message": "<what is wrong>"}``; they never echo secrets.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import Counter
from structlog.typing import FilteringBoundLogger

from processor import probes, signature
from processor.codec import event_key, parse_envelope
from processor.dedupe import Deduplicator, MemoryDeduplicator
from processor.errors import BrokerUnavailable, DeliveryRejected, PayloadTooLarge, UnknownTenant
from processor.metrics import Metrics
from processor.publisher import ConfirmedPublisher, headers_of
from processor.settings import DEFAULT_TENANT, Settings, TenantSettings
from processor.topology import EVENTS

WEBHOOK_PATH = "/webhooks/zenoti"


class Ingress:
    """The delivery endpoint; one per process."""

    def __init__(
        self, settings: Settings, publisher: ConfirmedPublisher, metrics: Metrics,
        log: FilteringBoundLogger, accepted: Deduplicator | None = None,
    ) -> None:
        self._settings = settings
        self._tenants: dict[str, TenantSettings] = settings.all_tenants()
        self._publisher = publisher
        self._metrics = metrics
        self._log = log
        self._accepted: Deduplicator = accepted or MemoryDeduplicator(
            settings.dedupe_window_seconds, settings.dedupe_memory_keys
        )
        self.draining = False
        self._counters: dict[tuple[str, str, int], Counter] = {}

    def app(self) -> web.Application:
        """The aiohttp application with the webhook and probe routes."""
        # The body cap is enforced by our own read; aiohttp's own limit is set just above it.
        app = web.Application(client_max_size=self._settings.max_body_bytes + 1)
        for method in ("POST", "PUT", "PATCH"):
            app.router.add_route(method, WEBHOOK_PATH, self.deliver)
            app.router.add_route(method, WEBHOOK_PATH + "/{tenant}", self.deliver)
        probes.add_routes(app, self._metrics, lambda: self._publisher.ready and not self.draining)
        return app

    async def deliver(self, request: web.Request) -> web.Response:
        """Answer one delivery (see the module docstring for the contract)."""
        tenant = request.match_info.get("tenant", DEFAULT_TENANT)
        try:
            response = await self._accept(request, tenant)
        except DeliveryRejected as exc:
            response = self._reject(exc, tenant)
        except BrokerUnavailable as exc:
            response = self._unavailable(exc, tenant)
        return response

    async def _accept(self, request: web.Request, tenant: str) -> web.Response:
        config = self._tenants.get(tenant)
        if config is None:
            raise UnknownTenant(f"no tenant named {tenant!r} is configured")
        body = await self._read(request)
        if not body:
            self._count(tenant, "ping", 200)
            return web.json_response({"status": "ok", "detail": "empty body: test trigger"})
        signature.verify(body, request.headers.get(signature.HEADER), config.webhook_secrets)
        envelope = parse_envelope(body)
        key = event_key(envelope, body)
        if await self._accepted.seen(key):
            self._count(tenant, "duplicate", 200)
            return _answer("duplicate", key, 200)
        started = time.perf_counter()
        await self._publisher.publish(
            EVENTS, envelope.routing_key, body, message_id=key,
            headers=headers_of({
                "tenant": tenant, "event_type": envelope.event_type,
                "received_at": datetime.now(UTC).isoformat(), "delivery_id": envelope.id,
            }),
            confirm_timeout=self._settings.confirm_timeout,
        )
        self._metrics.confirm_seconds.observe(time.perf_counter() - started)
        await self._accepted.remember(key)
        self._count(tenant, "accepted", 202)
        return _answer("accepted", key, 202)

    async def _read(self, request: web.Request) -> bytes:
        limit = self._settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"body of {length} bytes is over the limit of {limit} bytes")
        if length is not None:  # the usual case: one read, no chunk loop
            try:
                return await request.content.readexactly(length)
            except asyncio.IncompleteReadError as exc:  # the client went away mid-body
                return exc.partial
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        return bytes(body)

    def _reject(self, exc: DeliveryRejected, tenant: str) -> web.Response:
        self._count(tenant if exc.status != 404 else "unknown", exc.code, exc.status)
        self._log.info("delivery.rejected", tenant=tenant, status=exc.status, error=exc.code,
                       detail=exc.message)
        return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)

    def _unavailable(self, exc: BrokerUnavailable, tenant: str) -> web.Response:
        self._count(tenant, "broker_unavailable", 503)
        self._log.warning("delivery.unavailable", tenant=tenant, detail=str(exc))
        retry_after = str(self._settings.retry_after_seconds)
        return web.json_response(
            {"error": "broker_unavailable", "message": f"{exc}; retry later"},
            status=503, headers={"Retry-After": retry_after},
        )

    def _count(self, tenant: str, outcome: str, status: int) -> None:
        # labels() costs a few microseconds a call; the children are few (tenants x outcomes).
        child = self._counters.get((tenant, outcome, status))
        if child is None:
            child = self._metrics.deliveries.labels(tenant=tenant, outcome=outcome,
                                                    status=str(status))
            self._counters[(tenant, outcome, status)] = child
        child.inc()


def _answer(status: str, key: str, code: int) -> web.Response:
    """``{"status": status, "event_id": key}`` as json_response writes it, without the
    dict-walking encoder (only ``key`` needs escaping)."""
    text = f'{{"status": "{status}", "event_id": {json.dumps(key)}}}'
    return web.Response(text=text, status=code, content_type="application/json")

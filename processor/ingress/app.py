"""The HTTP ingress: verify a Zenoti delivery, publish it with a confirm, then answer.

Per delivery (``POST|PUT|PATCH /webhooks/zenoti[/{tenant}]``):

1. unknown tenant -> 404; body over ``max_body_bytes`` -> 413; body not in within
   ``ingress_body_timeout`` -> 408
2. empty body -> 200, nothing published (Zenoti's unsigned "test trigger")
3. ``zenoti-webhook-signature`` checked against the tenant's secrets -> 401
4. the envelope parsed. A *signed* body that is not the envelope (not JSON, ``data`` not an
   object, no ``event_type``) is still accepted: parked in ``zenoti.unrouted`` (through
   ``zenoti.ingress.parked``, so the archive keeps it too) with reason
   ``invalid_envelope`` and answered 202, because every 4xx Zenoti gets for a signed delivery
   counts towards switching the webhook off. 400 naming the problem only for a tenant that
   accepts unsigned deliveries (``ALLOW_UNSIGNED``), where anyone could have sent it.
5. the raw bytes published to ``zenoti.ingress`` (routing key = normalised event type), a
   fanout to the archive stream and ``zenoti.events`` (``processor.broker.topology``), and
   202 only after the broker's confirm. With a spool (``SPOOL_DIR``): no confirm within
   ``confirm_timeout`` (the broker away, blocked, or the connection lost) -> the delivery is
   written to the spool and 202 once it is on disk; while the spool holds anything, every
   delivery goes to it (behind the others, so order by arrival is kept) and the forwarder
   publishes them. Without a spool, or with it full or failing -> 503 with ``Retry-After``,
   so Zenoti sends it again. Never a 2xx for what is neither confirmed nor on disk.

Keys are per tenant: the message id is ``<tenant>:<event key>`` (bounded to AMQP's 255 bytes,
the original in the ``event_id`` header), and de-duplication remembers that id, so two
organisations' deliveries never collide however their ids are chosen.

Errors are JSON: ``{"error": "<code>", "message": "<what is wrong>"}``; they never echo secrets.

With a ``tracer`` (tracing on, ``processor.tracing``), each delivery is a SERVER span, timed
from the request's arrival, that continues the sender's ``traceparent`` only once the
signature is verified (``processor.tracing.spans``: refused requests and unsigned tenants'
deliveries start a new trace), and what is published (or spooled) carries the span's context
in its ``traceparent``/``tracestate`` headers; without one, none of that runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from aio_pika.abc import HeadersType
from aiohttp import web
from opentelemetry.trace import Tracer
from prometheus_client import Counter
from structlog.typing import FilteringBoundLogger

from processor import logs
from processor import message as m
from processor.broker.publisher import ConfirmedPublisher
from processor.broker.topology import INGRESS, PARKED
from processor.errors import (
    BodyTimeout,
    BrokerUnavailable,
    DeliveryRejected,
    InvalidEnvelope,
    PayloadTooLarge,
    PublishRefused,
    UnknownTenant,
)
from processor.ingress import signature
from processor.ingress.envelope import event_key, parse_envelope
from processor.message import MessageMeta, header_text, headers_of, scoped_key
from processor.metrics import Metrics
from processor.serving import probes
from processor.settings import DEFAULT_TENANT, Settings, TenantSettings
from processor.spool.spool import Spool, Spooled
from processor.tracing import carrier, spans
from processor.worker.dedupe import Deduplicator, MemoryDeduplicator
from schemas.envelope import routing_key

WEBHOOK_PATH = "/webhooks/zenoti"
_SHOWN = 64  # characters of a caller-chosen name (tenant path) that logs and errors show


class Ingress:
    """The delivery endpoint; one per process."""

    def __init__(
        self, settings: Settings, publisher: ConfirmedPublisher, metrics: Metrics,
        log: FilteringBoundLogger, accepted: Deduplicator | None = None,
        spool: Spool | None = None, tracer: Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._tracer = tracer
        self._tenants: dict[str, TenantSettings] = settings.all_tenants()
        self._publisher = publisher
        self._metrics = metrics
        self._log = log
        self._accepted: Deduplicator = accepted or MemoryDeduplicator(
            settings.dedupe_window_seconds, settings.dedupe_memory_keys
        )
        self._spool = spool
        self.draining = False
        self._counters: dict[tuple[str, str, int], Counter] = {}
        # The 503s of a failing spool are what alerts watch: their children exist from the
        # start, so the first burst is an increase, not a series appearing.
        outcomes = [("spooled", 202), ("spool_full", 503), ("spool_unavailable", 503)]
        for tenant in self._tenants if spool is not None else ():
            for outcome, status in outcomes:
                self._child(tenant, outcome, status)

    def app(self) -> web.Application:
        """The aiohttp application with the webhook and probe routes."""
        # The body cap is enforced by our own read; aiohttp's own limit is set just above it.
        app = web.Application(client_max_size=self._settings.max_body_bytes + 1)
        for method in ("POST", "PUT", "PATCH"):
            # A URL pasted into Zenoti with a trailing slash must not fail every delivery.
            for path in (WEBHOOK_PATH, WEBHOOK_PATH + "/{tenant}"):
                app.router.add_route(method, path, self.deliver)
                app.router.add_route(method, path + "/", self.deliver)
        probes.add_routes(app, self._metrics, self.ready)
        return app

    def ready(self) -> bool:
        """What ``/readyz`` answers: able to make a delivery durable (a broker connection, or
        a spool with room: Zenoti must keep sending while we spool) and not draining."""
        spool = self._spool
        if spool is not None and not spool.empty:  # spooling: every delivery goes to disk
            return spool.accepting and not self.draining
        durable = self._publisher.ready or (spool is not None and spool.accepting)
        return durable and not self.draining

    async def deliver(self, request: web.Request) -> web.Response:
        """Answer one delivery (see the module docstring for the contract), timed in
        ``zenoti_events_answer_seconds``."""
        started = time.perf_counter()
        if self._tracer is None:
            response = await self._answer(request)
        else:
            route = request.match_info.route.resource
            with spans.serving(self._tracer, request.method,
                               route.canonical if route else WEBHOOK_PATH, request.headers
                               ) as serving:
                response = await self._answer(request)
                serving.answered(response.status)
        self._metrics.answer_seconds.observe(time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
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
            raise UnknownTenant(f"no tenant named {_shown(tenant)} is configured")
        try:
            async with asyncio.timeout(self._settings.ingress_body_timeout):
                body = await self._read(request)
        except TimeoutError:
            raise BodyTimeout(f"body not received within "
                              f"{self._settings.ingress_body_timeout:g} s") from None
        if not body:
            self._count(tenant, "ping", 200)
            return web.json_response({"status": "ok", "detail": "empty body: test trigger"})
        signed = bool(config.webhook_secrets)
        signature.verify(body, request.headers.get(signature.HEADER), config.webhook_secrets)
        if self._tracer is not None:  # only now may a signed sender's traceparent continue
            spans.verified(signed)
        if not signed:
            self._metrics.unsigned.labels(tenant=tenant).inc()
        try:
            return await self._keep(tenant, body, signed)
        except PublishRefused as exc:  # read and checked: keep it all the same
            return await self._refused(tenant, body, exc)

    async def _keep(self, tenant: str, body: bytes, signed: bool) -> web.Response:
        """Publish a checked body: the envelope to its handlers, anything else parked."""
        try:
            envelope = parse_envelope(body)
        except InvalidEnvelope as exc:
            if not signed:
                raise
            return await self._park(tenant, body, exc)
        key = event_key(envelope, body)
        return await self._publish(
            tenant, key, body, envelope.routing_key, event_type=envelope.event_type,
            delivery_id=envelope.id,
        )

    async def _park(self, tenant: str, body: bytes, problem: InvalidEnvelope) -> web.Response:
        """Keep a signed body that is not the envelope in ``zenoti.unrouted`` (and the
        archive), with why."""
        key, event_type = _loose_identity(body)
        said = problem.message[:300]  # it may quote the body at any length
        self._log.info("delivery.parked", tenant=tenant, reason="invalid_envelope",
                       detail=said)
        return await self._publish(
            tenant, key, body, routing_key(event_type or "invalid"), exchange=PARKED,
            event_type=event_type, outcome="parked", problem=said,
            parked=MessageMeta(reason="invalid_envelope", error=problem.message,
                               dead_at=datetime.now(UTC)),
        )

    async def _publish(
        self, tenant: str, key: str, body: bytes, key_for_routing: str, *,
        exchange: str = INGRESS, event_type: str | None = None, delivery_id: str | None = None,
        outcome: str = "accepted", problem: str | None = None, parked: MessageMeta | None = None,
    ) -> web.Response:
        """Publish ``body`` under the tenant-scoped id of ``key`` unless already accepted;
        202 once confirmed, 200 for a duplicate."""
        message_id = scoped_key(tenant, key)
        if await self._accepted.seen(message_id):
            self._count(tenant, "duplicate", 200)
            return _answer("duplicate", key, 200)
        headers = {**headers_of({
            m.TENANT: tenant, m.EVENT_TYPE: header_text(event_type),
            m.EVENT_ID: header_text(key), m.RECEIVED_AT: datetime.now(UTC).isoformat(),
            m.DELIVERY_ID: header_text(delivery_id),
        }), **(parked.to_headers() if parked else {})}
        if self._tracer is not None:  # the delivery's span, for the worker to continue
            spans.delivery_described(event_type, message_id)  # started first, if not yet
            carrier.inject(headers)
        if await self._send(exchange, key_for_routing, body, message_id, headers):
            outcome = "spooled" if outcome == "accepted" else outcome
        await self._accepted.remember(message_id)
        self._count(tenant, outcome, 202)
        if problem:  # parked: say why, as a 4xx would have
            reason = parked.reason if parked else ""
            return web.json_response({"status": outcome, "event_id": key, "reason": reason,
                                      "message": problem}, status=202)
        return _answer(outcome, key, 202)

    async def _send(self, exchange: str, key_for_routing: str, body: bytes, message_id: str,
                    headers: HeadersType) -> bool:
        """Make the message durable: published and confirmed, or (with a spool) on disk.
        True when spooled. While the spool holds anything, or with no connection, straight
        to the spool; otherwise a direct publish, and the spool if it is not confirmed."""
        spool = self._spool
        if spool is not None and (not spool.empty or not self._publisher.ready):
            await spool.append(Spooled(exchange, key_for_routing, message_id, headers, body,
                                       time.time()))
            return True
        started = time.perf_counter()
        try:
            await self._publisher.publish(
                exchange, key_for_routing, body, message_id=message_id, headers=headers,
                confirm_timeout=self._settings.confirm_timeout,
                # Answered 503 (or spooled), but queued after all (a confirm late in a broker
                # alarm): Zenoti's resend must then be a duplicate, not a second event.
                on_late_confirm=lambda: self._accepted.remember(message_id),
            )
        except BrokerUnavailable:
            if spool is None:
                raise
            await spool.append(Spooled(exchange, key_for_routing, message_id, headers, body,
                                       time.time()))
            return True
        self._metrics.confirm_seconds.observe(time.perf_counter() - started)
        return False

    async def _refused(self, tenant: str, body: bytes, exc: PublishRefused) -> web.Response:
        """A message the broker would refuse for its properties (an id or type it cannot
        encode, say): park the bare body under its hash, with the reason, in
        ``zenoti.unrouted``. Refused even so, it is a 500 naming the problem."""
        key = event_key(None, body)
        try:
            return await self._publish(
                tenant, key, body, "invalid", exchange=PARKED, outcome="parked",
                problem=str(exc)[:300],
                parked=MessageMeta(reason="publish_refused", error=str(exc)[:1000]),
            )
        except (PublishRefused, BrokerUnavailable) as again:
            self._count(tenant, "publish_refused", 500)
            self._log.error("delivery.refused", tenant=tenant, error=str(again)[:300])
            return web.json_response({"error": "publish_refused", "message": str(again)[:300]},
                                     status=500)

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
        known = exc.status != 404
        self._count(tenant if known else "unknown", exc.code, exc.status)
        # Anyone can send these: one line per tenant and cause a minute, not one per request.
        logs.THROTTLE.warning(self._log, f"delivery.rejected.{exc.code}",
                              tenant=tenant if known else _shown(tenant), status=exc.status,
                              detail=exc.message)
        return web.json_response({"error": exc.code, "message": exc.message}, status=exc.status)

    def _unavailable(self, exc: BrokerUnavailable, tenant: str) -> web.Response:
        self._count(tenant, exc.outcome, 503)
        # One line per tenant and cause a minute: in an outage every delivery is one.
        logs.THROTTLE.warning(self._log, f"delivery.unavailable.{exc.outcome}", tenant=tenant,
                              detail=str(exc))
        retry_after = str(self._settings.retry_after_seconds)
        return web.json_response(
            {"error": exc.outcome, "message": f"{exc}; retry later"},
            status=503, headers={"Retry-After": retry_after},
        )

    def _count(self, tenant: str, outcome: str, status: int) -> None:
        # labels() costs a few microseconds a call; the children are few (tenants x outcomes).
        if self._tracer is not None:  # every answer is counted once: the span learns it here
            spans.delivery_counted(tenant, outcome)
        child = self._counters.get((tenant, outcome, status))
        (child or self._child(tenant, outcome, status)).inc()

    def _child(self, tenant: str, outcome: str, status: int) -> Counter:
        child = self._metrics.deliveries.labels(tenant=tenant, outcome=outcome,
                                                status=str(status))
        self._counters[(tenant, outcome, status)] = child
        return child


def _shown(name: str) -> str:
    """A caller-chosen name as logs and errors show it: quoted, escaped, at most 64 chars."""
    return repr(name[:_SHOWN]) + ("..." if len(name) > _SHOWN else "")


def _loose_identity(body: bytes) -> tuple[str, str | None]:
    """The key and event type of a body that is not a valid envelope, as far as it has them:
    its ``event_id`` or ``id`` when it is a JSON object holding one, else a hash of the body."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the stack
        value = None
    fields = value if isinstance(value, dict) else {}
    ids = [fields.get(name) for name in ("event_id", "id")]
    key = next((str(v) for v in ids if isinstance(v, str | int) and str(v)), None)
    event_type = fields.get("event_type")
    return (key or event_key(None, body),
            event_type if isinstance(event_type, str) and event_type else None)


def _answer(status: str, key: str, code: int) -> web.Response:
    """``{"status": status, "event_id": key}`` as json_response writes it, without the
    dict-walking encoder (only ``key`` needs escaping)."""
    text = f'{{"status": "{status}", "event_id": {json.dumps(key)}}}'
    return web.Response(text=text, status=code, content_type="application/json")

"""Running one handler over the messages of its queue, and settling each by its fate.

A message is acked only after the handler returned and its output was confirmed, or after its
retry copy or dead letter was confirmed by the broker: at every instant the message exists in
at least one queue. If even that publish fails, the message is nacked back to its queue.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, HeadersType
from pydantic import BaseModel
from structlog.typing import FilteringBoundLogger

from processor.codec import decode_event
from processor.errors import BrokerUnavailable, PermanentError
from processor.fate import Fate, Outcome, decide
from processor.handler import Context, Event, Handler
from processor.metrics import Metrics
from processor.publisher import ConfirmedPublisher, headers_of
from processor.topology import DEAD, ENRICHED, queue_name
from processor.zenoti import ZenotiClients


class Dispatcher:
    """The consumer callback of one handler's queue."""

    def __init__(
        self, handler: Handler, *, publisher: ConfirmedPublisher, clients: ZenotiClients,
        tenants: frozenset[str], metrics: Metrics, log: FilteringBoundLogger,
        confirm_timeout: float = 5.0,
    ) -> None:
        self.handler = handler
        self.queue = queue_name(handler.name)
        self._publisher = publisher
        self._clients = clients
        self._tenants = tenants
        self._metrics = metrics
        self._log = log
        self._timeout = confirm_timeout

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        name = self.handler.name
        started = time.perf_counter()
        self._metrics.in_flight.labels(handler=name).inc()
        with structlog.contextvars.bound_contextvars(
            handler=name, event_id=message.message_id,
            event_type=_header(message.headers, "event_type"),
            tenant=_header(message.headers, "tenant"),
        ):
            try:
                fate = await self._run(message)
                await self._settle(message, fate)
            finally:
                self._metrics.in_flight.labels(handler=name).dec()
                self._metrics.handler_seconds.labels(handler=name).observe(
                    time.perf_counter() - started
                )

    async def _run(self, message: AbstractIncomingMessage) -> Fate:
        try:
            tenant = self._tenant_of(message)
            event = decode_event(message.body, self.handler.schema, message.headers, tenant)
            await self.handler.handle(event, self._context(event))
        except Exception as exc:
            return decide(exc)
        return decide(None)

    def _tenant_of(self, message: AbstractIncomingMessage) -> str:
        tenant = _header(message.headers, "tenant") or "default"
        if tenant not in self._tenants:
            raise PermanentError(f"tenant {tenant!r} is not configured in this worker")
        return tenant

    def _context(self, event: Event[Any]) -> Context:
        async def publish(name: str, model: BaseModel) -> None:
            await self._publisher.publish(
                ENRICHED, name, model.model_dump_json().encode(),
                message_id=f"{event.key}:{self.handler.name}:{name}",
                headers=headers_of({"tenant": event.tenant, "handler": self.handler.name,
                                    "source_event_type": event.event_type}),
                confirm_timeout=self._timeout,
            )

        return Context(zenoti=self._clients.for_tenant(event.tenant), log=self._log,
                       publish=publish)

    async def _settle(self, message: AbstractIncomingMessage, fate: Fate) -> None:
        outcome = fate.outcome
        try:
            if outcome is Outcome.RETRY:
                await self._republish(message, "", self.queue, _retry_headers(message, fate))
            elif outcome is Outcome.DEAD_LETTER:
                await self._republish(message, DEAD, self.queue, self._dead_headers(message, fate))
            await message.ack()
        except BrokerUnavailable as exc:
            # Its copy was not confirmed: give the message back rather than risk losing it.
            self._log.warning("message.requeued", outcome=outcome.value, error=str(exc))
            await message.nack(requeue=True)
        self._metrics.messages.labels(handler=self.handler.name, outcome=outcome.value).inc()
        if outcome is not Outcome.ACK:
            self._log.warning(f"message.{outcome.value}", reason=fate.reason, detail=fate.detail)

    async def _republish(
        self, message: AbstractIncomingMessage, exchange: str, key: str, headers: HeadersType
    ) -> None:
        await self._publisher.publish(
            exchange, key, message.body, message_id=message.message_id or "",
            headers=headers, confirm_timeout=self._timeout,
            content_type=message.content_type or "application/json",
        )

    def _dead_headers(self, message: AbstractIncomingMessage, fate: Fate) -> HeadersType:
        return {
            **message.headers,
            **headers_of({
                "x-zenoti-reason": fate.reason, "x-zenoti-error": fate.detail,
                "x-zenoti-handler": self.handler.name, "x-zenoti-dead-at": _now(),
                "x-zenoti-attempt": _attempt(message),
            }),
        }


def _retry_headers(message: AbstractIncomingMessage, fate: Fate) -> HeadersType:
    return {
        **message.headers,
        **headers_of({
            "x-zenoti-attempt": _attempt(message) + 1,
            "x-zenoti-first-failure-at": message.headers.get("x-zenoti-first-failure-at") or _now(),
            "x-zenoti-last-reason": fate.reason, "x-zenoti-last-error": fate.detail,
        }),
    }


def _attempt(message: AbstractIncomingMessage) -> int:
    value = message.headers.get("x-zenoti-attempt", 1)
    return value if isinstance(value, int) else 1


def _header(headers: HeadersType, name: str) -> str | None:
    value = headers.get(name)
    return value.decode() if isinstance(value, bytes) else (str(value) if value else None)


def _now() -> str:
    return datetime.now(UTC).isoformat()

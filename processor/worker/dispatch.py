"""Running one handler over the messages of its queue, and settling each by its fate.

A message is acked only after the handler returned and its output was confirmed, or after its
retry copy or dead letter was confirmed by the broker: at every instant the message exists in
at least one queue. If even that publish fails, the message is nacked back to its queue.
An event this handler already handled (same tenant and key, remembered by ``done``) is acked
unrun, unless it is a replay from the archive (``x-zenoti-replay-of``): running it again is
what the operator asked for. It is still remembered once handled, and its outputs carry
``x-zenoti-replay-of`` beside their stable ids, so consumers can tell a re-run from a
duplicate. ``handle`` gets ``handler_timeout`` seconds; past it the message is retried.

With a ``tracer`` (tracing on, ``processor.tracing``), each message is a CONSUMER span, child
of the context in its headers, carrying the handler and the fate; its output publishes are
PRODUCER spans whose context goes into the output's headers, and a retry copy names the first
attempt's span, which later attempts link to. Without one, none of that runs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Tracer
from pydantic import BaseModel
from structlog.typing import FilteringBoundLogger

from processor import message as m
from processor.broker.protocols import Headers, IncomingMessage, Publisher
from processor.broker.topology import DEAD, ENRICHED, queue_name
from processor.contract import cloudevents
from processor.errors import BrokerUnavailable, HandlerTimeout, PermanentError, PublishRefused
from processor.fate import Fate, Outcome, decide
from processor.handler import Context, Event, Handler
from processor.logs import MessageFields
from processor.message import MessageMeta, headers_of, output_id, scoped_key
from processor.metrics import Metrics
from processor.settings import DEFAULT_TENANT
from processor.tracing import carrier, spans
from processor.tracing.publishing import TracedPublisher
from processor.worker.deadline import DeadlineExceeded, within
from processor.worker.decode import decode_event
from processor.worker.dedupe import Deduplicator
from processor.worker.retry import Delay, RetryPolicy
from processor.zenoti.clients import ZenotiClients

# The ``outcome`` label of ``zenoti_events_messages_total``.
OUTCOMES = ("ok", "retry", "deferred", "dead_letter", "duplicate")


class Dispatcher:
    """The consumer callback of one handler's queue."""

    def __init__(
        self, handler: Handler, *, publisher: Publisher, clients: ZenotiClients,
        tenants: frozenset[str], retry: RetryPolicy, done: Deduplicator, metrics: Metrics,
        log: FilteringBoundLogger, confirm_timeout: float = 5.0, handler_timeout: float = 60.0,
        tracer: Tracer | None = None, requeue_pause: float = 1.0,
    ) -> None:
        self.handler = handler
        self._requeue_pause = requeue_pause
        self.queue = queue_name(handler.name)
        self._tracer = tracer
        # Outputs through a span when tracing; retry copies and dead letters keep the
        # delivery's own context (``_copies``).
        self._publisher: Publisher = (
            publisher if tracer is None else TracedPublisher(publisher, tracer))
        self._copies = publisher
        self._clients = clients
        self._tenants = tenants
        self._retry = retry
        self._done = done
        self._log = log
        self._timeout = confirm_timeout
        self._handler_timeout = handler_timeout
        # Every child made now: a worker that hangs before its first message still shows its
        # zeros (an alert on a rate needs the series), and labels() costs microseconds a call.
        name = handler.name
        self._in_flight = metrics.in_flight.labels(handler=name)
        self._seconds = metrics.handler_seconds.labels(handler=name)
        self._outcomes = {outcome: metrics.messages.labels(handler=name, outcome=outcome)
                          for outcome in OUTCOMES}

    async def __call__(self, message: IncomingMessage) -> None:
        name = self.handler.name
        started = time.perf_counter()
        self._in_flight.inc()
        meta = MessageMeta.from_headers(message.headers)
        with MessageFields(handler=name, event_id=message.message_id,
                           event_type=meta.event_type, tenant=meta.tenant):
            try:
                if self._tracer is None:
                    await self._process(message, meta)
                else:
                    await self._traced(message, meta, self._tracer)
            finally:
                self._in_flight.dec()
                self._seconds.observe(time.perf_counter() - started)

    async def _traced(self, message: IncomingMessage, meta: MessageMeta, tracer: Tracer) -> None:
        """``_process`` inside the message's span, its log lines carrying the trace id."""
        with spans.consuming(tracer, self.queue, self.handler.name, message.headers,
                             message.message_id, len(message.body), meta) as span:
            with MessageFields(handler=self.handler.name, event_id=message.message_id,
                               event_type=meta.event_type, tenant=meta.tenant,
                               trace_id=spans.trace_id(span)):
                label, fate = await self._process(message, meta)
            spans.settled(span, label, fate)

    async def _process(self, message: IncomingMessage, meta: MessageMeta
                       ) -> tuple[str, Fate | None]:
        """Run and settle the message; its ``messages_total`` outcome, and its fate unless it
        was a duplicate."""
        done_key = self._done_key(message, meta)
        replayed = meta.replay_of is not None  # re-run on purpose: never a duplicate
        if done_key and not replayed and await self._done.seen(done_key):
            await message.ack()
            self._outcomes["duplicate"].inc()
            self._log.info("message.duplicate")
            return "duplicate", None
        fate = await self._run(message, meta)
        if fate.outcome is Outcome.ACK and done_key:
            await self._done.remember(done_key)
        return await self._settle(message, fate)

    def _done_key(self, message: IncomingMessage, meta: MessageMeta) -> str | None:
        """``<handler>:<tenant>:<key>``. The ingress's message ids already start with the
        tenant; an id from elsewhere (a hand-made or pre-upgrade message) is scoped here."""
        message_id = message.message_id
        if not message_id:
            return None
        tenant = meta.tenant or DEFAULT_TENANT
        if not message_id.startswith(f"{tenant}:"):
            message_id = scoped_key(tenant, message_id)
        return f"{self.handler.name}:{message_id}"

    async def _run(self, message: IncomingMessage, meta: MessageMeta) -> Fate:
        try:
            tenant = self._tenant_of(meta, message.headers)
            event = decode_event(message.body, self.handler.schema, meta, tenant)
            await self._handle(event, meta.replay_of)
        except Exception as exc:
            return decide(exc)
        return decide(None)

    async def _handle(self, event: Event[Any], replay_of: str | None) -> None:
        context = self._context(event, replay_of)
        try:
            await within(self._handler_timeout, self.handler.handle(event, context))
        except DeadlineExceeded:
            raise HandlerTimeout(f"handle did not finish within {self._handler_timeout:g} s"
                                 ) from None

    def _tenant_of(self, meta: MessageMeta, headers: Headers) -> str:
        """The message's tenant; the default one only when the header is absent (a header of
        another type is parked, never run as the default tenant)."""
        if meta.tenant is None and headers.get(m.TENANT) is not None:
            raise PermanentError(f"the {m.TENANT} header is not text: "
                                 f"{type(headers[m.TENANT]).__name__}")
        tenant = meta.tenant or DEFAULT_TENANT
        if tenant not in self._tenants:
            raise PermanentError(f"tenant {tenant!r} is not configured in this worker")
        return tenant

    def _context(self, event: Event[Any], replay_of: str | None) -> Context:
        async def publish(name: str, model: BaseModel) -> None:
            message_id = output_id(event.tenant, event.key, self.handler.name, name)
            ours = headers_of({m.TENANT: event.tenant, m.HANDLER: self.handler.name,
                               m.SOURCE_EVENT_TYPE: event.event_type,
                               m.RECEIVED_AT: event.received_at, m.REPLAY_OF: replay_of})
            await self._publisher.publish(
                ENRICHED, name, model.model_dump_json().encode(), message_id=message_id,
                headers={**ours, **cloudevents.headers(event, name, model, message_id)},
                confirm_timeout=self._timeout,
            )

        # Lists of memberships and packages must be newer than the event (processor.zenoti.cache).
        fresh_after = event.received_at.timestamp() if event.received_at else time.time()
        zenoti = self._clients.for_tenant(event.tenant).bound(fresh_after)
        return Context(zenoti=zenoti, log=self._log, publish=publish)

    async def _settle(self, message: IncomingMessage, fate: Fate) -> tuple[str, Fate]:
        try:
            rejected = False
            try:
                if fate.outcome is Outcome.RETRY:
                    fate = await self._retry_or_give_up(message, fate)
                elif fate.outcome is Outcome.DEAD_LETTER:
                    await self._dead_letter(message, fate, message.headers)
            except PublishRefused as exc:
                fate, rejected = await self._refused(message, fate, exc)
            if not rejected:
                await message.ack()
        except BrokerUnavailable as exc:
            # Its copy was not confirmed: give the message back rather than risk losing it.
            self._log.warning("message.requeued", outcome=fate.outcome.value, error=str(exc))
            # It comes straight back to some worker, whose handler runs again: the pause
            # keeps that loop from spinning while the broker recovers (on RabbitMQ 4.3 a nack
            # no longer counts toward the delivery limit, rightly: the broker failed, not the
            # message; so nothing else would slow it). A nack, not a reject, for that reason.
            await asyncio.sleep(self._requeue_pause)
            await message.nack(requeue=True)
        # Waiting for the API budget is not a failure: counted apart from retries, and not
        # logged per message (the budget logs its own state once per cause).
        deferred = fate.waiting
        label = "deferred" if deferred else fate.outcome.value
        self._outcomes[label].inc()
        if fate.outcome is not Outcome.ACK and not deferred:
            self._log.warning(f"message.{fate.outcome.value}", reason=fate.reason,
                              detail=fate.detail)
        return label, fate

    async def _refused(self, message: IncomingMessage, fate: Fate,
                       exc: PublishRefused) -> tuple[Fate, bool]:
        """The retry copy or dead letter itself cannot be published (its headers grew past
        the broker's limit, say): park the message without them but with its identity (tenant,
        type, ids, receipt: the broker took those already, and a replay must run as the same
        tenant), and if even that is refused, reject it, which the broker dead-letters into the
        same parking lot. Returns the fate and whether the message was rejected (then it must
        not be acked)."""
        parked = Fate(Outcome.DEAD_LETTER, exc.reason, f"{fate.reason}: {exc}"[:1000])
        was = MessageMeta.from_headers(message.headers)
        identity = MessageMeta(was.tenant, was.event_type, was.event_id, was.delivery_id,
                               was.received_at, replay_of=was.replay_of).to_headers()
        try:
            await self._dead_letter(message, parked, {**identity, m.ATTEMPT: 1})
        except PublishRefused:
            await message.reject(requeue=False)
            return parked, True
        return parked, False

    async def _retry_or_give_up(self, message: IncomingMessage, fate: Fate) -> Fate:
        step = self._retry.plan(message.headers, fate)
        if isinstance(step, Delay):
            headers = step.headers if self._tracer is None else carrier.remember_first(
                step.headers)
            await self._republish(message, "", step.queue, headers)
            return fate
        final = Fate(Outcome.DEAD_LETTER, fate.parks_as or step.reason, fate.detail)
        await self._dead_letter(message, final, step.headers)
        return final

    async def _dead_letter(
        self, message: IncomingMessage, fate: Fate, headers: Headers
    ) -> None:
        why = MessageMeta(reason=fate.reason, error=fate.detail, parked_by=self.handler.name,
                          dead_at=datetime.now(UTC))
        parked = {**headers, **why.to_headers()}
        parked.setdefault(m.ATTEMPT, 1)
        await self._republish(message, DEAD, self.queue, parked)

    async def _republish(
        self, message: IncomingMessage, exchange: str, key: str, headers: Headers
    ) -> None:
        await self._copies.publish(
            exchange, key, message.body, message_id=message.message_id or "",
            headers={k: v for k, v in headers.items() if k not in m.BROKER_HEADERS},
            confirm_timeout=self._timeout,
            content_type=message.content_type or "application/json",
        )

"""The forwarder: drains the spool into the broker, oldest first, deleting only what is confirmed.

Each spooled record is published exactly as the ingress would have published it (exchange,
routing key, message id, headers, body), ``window`` at a time on the publisher's confirm
channel, and the longest confirmed prefix is then deleted from the spool. When the broker
does not take one (away, blocked, a nack), the forwarder waits (``backoff``, doubling up to
``max_delay``) and starts again from the oldest record not deleted, one record at a time until
one is confirmed; what the broker took without confirming in time is published a second time: a
duplicate with the same message id, which the workers' de-duplication on that id absorbs
(counted, never a loss).

A record the broker refuses for itself (``PublishRefused``: over its size limit, say) cannot
block the records behind it: it is parked in ``zenoti.unrouted`` with reason
``publish_refused``, and if even that is refused, its frame is kept in ``SPOOL_DIR/refused/``
for an operator and said once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from processor import logs
from processor import message as m
from processor.broker.protocols import Publisher
from processor.broker.topology import EVENTS, INGRESS, PARKED, UNROUTED
from processor.errors import BrokerUnavailable, PublishRefused
from processor.message import TENANT, MessageMeta
from processor.settings import Settings
from processor.spool.spool import Position, Spool, Spooled
from processor.tracing.carrier import is_traceparent, is_tracestate

_WINDOW = 128  # records in flight at once: enough to fill a confirm round trip


class Forwarder:
    """Drains one ``Spool`` through one publisher (see the module for the contract)."""

    def __init__(self, spool: Spool, publisher: Publisher, *, confirm_timeout: float,
                 log: FilteringBoundLogger, backoff: float = 0.2, max_delay: float = 5.0,
                 window: int = _WINDOW) -> None:
        self._spool = spool
        self._publisher = publisher
        self._confirm_timeout = confirm_timeout
        self._log = log
        self._backoff = backoff
        self._max_delay = max_delay
        self._window = window
        self.failures = 0  # passes in a row that forwarded nothing

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until ``stop``: whenever the spool holds records, and after each write. An
        unexpected error (a disk error moving the cursor, say) is logged and retried after
        the backoff: this task must outlive anything one pass meets."""
        delay = self._backoff
        while not stop.is_set():
            if self._spool.empty:
                self._spool.written.clear()
                await _first(stop.wait(), self._spool.written.wait())
                continue
            if await self._pass():
                delay = self._backoff
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._max_delay)

    async def drain(self, within: float) -> bool:
        """Forward what can be forwarded in ``within`` seconds (at SIGTERM); True if the
        spool is empty at the end. What is left stays on disk for the next start."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not self._spool.empty:
                    if not await self._pass():
                        await asyncio.sleep(self._backoff)
        if not self._spool.empty:
            self._log.warning("spool.left_on_disk", entries=self._spool.entries,
                              bytes=self._spool.bytes, seconds=within)
        return self._spool.empty

    async def _pass(self) -> bool:
        """``forward_batch``, with an unexpected error logged (once per error in a row) and
        counted as a pass that forwarded nothing."""
        try:
            return await self.forward_batch()
        except Exception as exc:
            self.failures += 1
            logs.THROTTLE.warning(self._log, "spool.forward_failed", error=repr(exc)[:300],
                                entries=self._spool.entries)
            return False

    async def forward_batch(self) -> bool:
        """Forward the oldest records, a window at a time; True if any was confirmed. After a
        failed pass the window is one record until one is confirmed: a blocked broker may
        queue every publish it was sent and confirm none, and each resent window would be that
        many duplicates."""
        records = await self._spool.batch()
        progressed, start = False, 0
        while start < len(records):
            window = records[start:start + (1 if self.failures else self._window)]
            confirmed = await self._publish_prefix(window)
            if confirmed:
                upto, last = window[confirmed - 1]
                await self._spool.forwarded(upto, confirmed, last)
                progressed = True
            if confirmed < len(window):
                self.failures += 1
                return progressed
            self.failures = 0
            start += len(window)
        return progressed

    async def _publish_prefix(self, window: Sequence[tuple[Position, Spooled]]) -> int:
        """Publish ``window`` at once; how many records from its start were confirmed."""
        results = await asyncio.gather(*(self._publish(record) for _, record in window),
                                       return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                if not isinstance(result, BrokerUnavailable):
                    raise result
                if self.failures == 0:
                    self._log.info("spool.forward_paused", detail=str(result),
                                   entries=self._spool.entries)
                return index
        return len(window)

    async def _publish(self, record: Spooled) -> None:
        record = self._trace_checked(record)
        if not _trusted(record):
            kept = await asyncio.to_thread(_keep_refused, self._spool, record)
            self._log.error("spool.record_rejected", message_id=record.message_id[:100],
                            exchange=record.exchange[:100], file=kept,
                            detail="not a record this ingress writes: kept, not published")
            return
        try:
            await self._publisher.publish(
                record.exchange, record.routing_key, record.body, message_id=record.message_id,
                headers=record.headers, confirm_timeout=self._confirm_timeout)
        except PublishRefused as exc:
            await self._park(record, exc)

    def _trace_checked(self, record: Spooled) -> Spooled:
        """``record`` without a trace header unlike those the ingress writes (``traceparent``
        not in W3C's 55-character form, ``tracestate`` not text of at most 512 characters):
        the header is dropped, the record kept, and that said (throttled)."""
        headers = record.headers
        bad = [name for name, valid in ((m.TRACEPARENT, is_traceparent),
                                        (m.TRACESTATE, is_tracestate))
               if name in headers and not valid(headers[name])]
        if not bad:
            return record
        logs.THROTTLE.warning(self._log, "spool.trace_header_dropped", headers=bad,
                              message_id=record.message_id[:100])
        return record._replace(headers={k: v for k, v in headers.items() if k not in bad})

    async def _park(self, record: Spooled, problem: PublishRefused) -> None:
        """Park a record the broker refuses; keep it on disk if that is refused too."""
        meta = MessageMeta(reason="publish_refused", error=str(problem)[:1000],
                           dead_at=datetime.now(UTC))
        try:
            await self._publisher.publish(
                PARKED, "invalid", record.body, message_id=record.message_id,
                headers={**record.headers, **meta.to_headers()},
                confirm_timeout=self._confirm_timeout)
        except PublishRefused as again:
            kept = await asyncio.to_thread(_keep_refused, self._spool, record)
            self._log.error("spool.refused_kept", message_id=record.message_id,
                            error=str(again)[:300], file=kept)
            return
        self._log.warning("spool.refused_parked", message_id=record.message_id,
                          error=str(problem)[:300])


class Forwarding:
    """The forwarder of an ingress with a spool, as a task: opened at start, drained at stop.
    Without a spool, nothing."""

    def __init__(self, spool: Spool | None, publisher: Publisher, settings: Settings,
                 log: FilteringBoundLogger) -> None:
        self._spool = spool
        self._settings = settings
        self._log = log
        self._forwarder = None if spool is None else Forwarder(
            spool, publisher, confirm_timeout=settings.confirm_timeout, log=log,
            max_delay=settings.reconnect_max_delay)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._spool is None or self._forwarder is None:
            return
        await self._spool.open()
        self._task = asyncio.create_task(self._forwarder.run(self._stop), name="forwarder")

    async def finish(self) -> None:
        """Stop forwarding in the background, then forward what can be in the rest of
        ``SPOOL_DRAIN_SECONDS`` (the whole of it bounds both); what is left stays on disk."""
        if self._task is None or self._forwarder is None:
            return
        budget = self._settings.spool_drain_seconds
        started = time.monotonic()
        self._stop.set()
        try:  # a pass under way ends within one confirm timeout; past the budget, cut short
            await asyncio.wait_for(self._task, min(self._settings.confirm_timeout + 1, budget))
        except Exception as exc:  # the stop goes on whatever the task met
            if not isinstance(exc, TimeoutError):
                self._log.error("spool.forwarder_ended", error=repr(exc)[:300])
        await self._forwarder.drain(max(0.0, budget - (time.monotonic() - started)))


def _trusted(record: Spooled) -> bool:
    """Whether ``record`` is one this ingress writes: to ``zenoti.ingress`` or
    ``zenoti.ingress.parked`` (before the archive: ``zenoti.events`` or ``zenoti.unrouted``,
    forwarded as written, so not archived), under its own tenant's id. A record written by
    anything else into the directory (its volume mounted elsewhere, say) is never published
    with our rights, nor with a header the ingress never writes (``x-zenoti-replay-of``
    would skip the workers' de-duplication)."""
    tenant = record.headers.get(TENANT)
    return (record.exchange in (INGRESS, PARKED, EVENTS, UNROUTED) and isinstance(tenant, str)
            and record.message_id.startswith(tenant + ":")
            and _INGRESS_HEADERS.issuperset(record.headers))


# Every header the ingress puts on a delivery (processor/ingress/app.py), parked ones included;
# the trace context too (tracing on), so that a spooled delivery still joins its trace (its
# values checked first: ``Forwarder._trace_checked``).
_INGRESS_HEADERS = frozenset({m.TENANT, m.EVENT_TYPE, m.EVENT_ID, m.RECEIVED_AT, m.DELIVERY_ID,
                              m.REASON, m.ERROR, m.DEAD_AT, m.TRACEPARENT, m.TRACESTATE})


def _keep_refused(spool: Spool, record: Spooled) -> str:
    """Write a record that cannot be published under ``refused/`` (0600, synced, never
    through a link); its file name. A second copy of the same message id is not written."""
    folder = spool.directory / "refused"
    folder.mkdir(mode=0o700, exist_ok=True)
    name = hashlib.sha256(record.message_id.encode()).hexdigest()[:32] + ".rec"
    try:
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return name
    try:
        os.write(fd, record.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return name


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of ``waits`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

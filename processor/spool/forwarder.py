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
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from processor.broker.protocols import Publisher
from processor.broker.topology import UNROUTED
from processor.errors import BrokerUnavailable, PublishRefused
from processor.message import MessageMeta
from processor.settings import Settings
from processor.spool.spool import Position, Spool, Spooled

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
        """Forward until ``stop``: whenever the spool holds records, and after each write."""
        delay = self._backoff
        while not stop.is_set():
            if self._spool.empty:
                self._spool.written.clear()
                await _first(stop.wait(), self._spool.written.wait())
                continue
            if await self.forward_batch():
                delay = self._backoff
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self._max_delay)

    async def drain(self, within: float) -> bool:
        """Forward what can be forwarded in ``within`` seconds (at SIGTERM); True if the
        spool is empty at the end. What is left stays on disk for the next start."""
        try:
            async with asyncio.timeout(within):
                while not self._spool.empty:
                    if not await self.forward_batch():
                        await asyncio.sleep(self._backoff)
        except TimeoutError:
            pass
        if not self._spool.empty:
            self._log.warning("spool.left_on_disk", entries=self._spool.entries,
                              bytes=self._spool.bytes, seconds=within)
        return self._spool.empty

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
        try:
            await self._publisher.publish(
                record.exchange, record.routing_key, record.body, message_id=record.message_id,
                headers=record.headers, confirm_timeout=self._confirm_timeout)
        except PublishRefused as exc:
            await self._park(record, exc)

    async def _park(self, record: Spooled, problem: PublishRefused) -> None:
        """Park a record the broker refuses; keep it on disk if that is refused too."""
        meta = MessageMeta(reason="publish_refused", error=str(problem)[:1000],
                           dead_at=datetime.now(UTC))
        try:
            await self._publisher.publish(
                UNROUTED, "invalid", record.body, message_id=record.message_id,
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
        if self._task is None or self._forwarder is None:
            return
        self._stop.set()
        # A pass under way ends within one confirm timeout; past that it is cut short.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._task, self._settings.confirm_timeout + 1.0)
        await self._forwarder.drain(self._settings.spool_drain_seconds)


def _keep_refused(spool: Spool, record: Spooled) -> str:
    """Write a refused record's frame under ``refused/``, synced; its file name."""
    folder = spool.directory / "refused"
    folder.mkdir(exist_ok=True)
    name = hashlib.sha256(record.message_id.encode()).hexdigest()[:32] + ".rec"
    with open(folder / name, "wb") as file:
        file.write(record.encode())
        file.flush()
        os.fsync(file.fileno())
    return name


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of ``waits`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

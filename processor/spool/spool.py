"""The ingress's durable spool: where a delivery goes when the broker does not confirm it.

``append`` returns only once the record is on disk (``segments`` says how), so the ingress may
answer 2xx for it; writes that arrive while one is being synced are written and synced
together (group commit: one ``fdatasync`` per batch, not per delivery). The disk work runs in
a thread, never on the event loop. Past ``max_bytes`` (records on disk plus those waiting to
be written) ``append`` raises ``SpoolFull``; a failed write or sync raises
``SpoolUnavailable``: both are 503s, as without a spool.

The forwarder reads from the oldest record (``batch``) and calls ``forwarded`` once the
broker has confirmed a prefix of it; only then does the record leave the disk.

One process per directory: ``open`` takes a lock and fails with ``ConfigError`` otherwise.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from processor.errors import SpoolFull, SpoolUnavailable
from processor.metrics import Metrics
from processor.spool.record import Spooled
from processor.spool.segments import DamageFound, Position, Recovered, SegmentLog

__all__ = ["Position", "Spool", "Spooled"]

_HEADROOM = 16 * 1024
_MAX_PENDING = 32 * 1024 * 1024  # bytes waiting for the disk, held in memory


class Spool:
    """One spool directory, opened by one process (see the module for the contract)."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int,
                 metrics: Metrics, log: FilteringBoundLogger, write_timeout: float = 3.0) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._files = SegmentLog(directory, segment_bytes)
        self._metrics = metrics
        self._log = log
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._write_timeout = write_timeout
        self._writing_since: float | None = None  # monotonic start of the batch on disk now
        self._disk = asyncio.Lock()  # one thread at a time touches the files
        self.entries = 0
        self.bytes = 0
        self._oldest: float | None = None
        self.opened = False
        self.written = asyncio.Event()  # set by each write; the forwarder clears it

    @property
    def empty(self) -> bool:
        """Nothing on disk to forward and nothing being written."""
        return self.entries == 0 and self._pending_bytes == 0  # pending: queued or writing

    @property
    def accepting(self) -> bool:
        """Open, with room for a delivery of ``_HEADROOM`` bytes (most are a few KiB), and its
        disk answering: no write under way for longer than ``write_timeout``."""
        since = self._writing_since
        stuck = since is not None and time.monotonic() - since > self._write_timeout
        room = self.bytes + self._pending_bytes + _HEADROOM <= self.max_bytes
        return self.opened and room and not stuck

    async def open(self) -> None:
        """Take the directory and recover what a previous process left (``ConfigError`` if
        another process holds it)."""
        self._take(await asyncio.to_thread(self._files.open))
        self.opened = True
        if self.entries:
            self._log.warning("spool.recovered", entries=self.entries, bytes=self.bytes)
            self.written.set()
        self._metrics.spool_limit_bytes.set(self.max_bytes)
        self._metrics.spool_oldest_age.set_function(self._oldest_age)

    async def append(self, record: Spooled) -> None:
        """Return once ``record`` is on disk; ``SpoolFull`` when there is no room (on disk,
        or ``_MAX_PENDING`` waiting for it), ``SpoolUnavailable`` when the write failed or
        did not end within ``write_timeout`` (it may still land: a duplicate, never a loss)."""
        if not self.opened:
            raise SpoolUnavailable("the spool is not open")
        frame = record.encode()
        if self.bytes + self._pending_bytes + len(frame) > self.max_bytes:
            raise SpoolFull(f"the broker is not confirming and the spool is full "
                            f"({self.bytes} of {self.max_bytes} bytes)")
        if self._pending_bytes + len(frame) > _MAX_PENDING:
            raise SpoolFull(f"the broker is not confirming and {self._pending_bytes} bytes "
                            "are already waiting for the spool's disk")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((frame, done))
        self._pending_bytes += len(frame)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="spool-writer")
        try:  # shielded: a caller that goes away does not undo the write
            await asyncio.wait_for(asyncio.shield(done), self._write_timeout)
        except TimeoutError:
            raise SpoolUnavailable(f"the broker is not confirming and the spool's disk did "
                                   f"not answer within {self._write_timeout:g} s") from None

    async def batch(self) -> list[tuple[Position, Spooled]]:
        """The oldest records not yet forwarded (a few MiB at most), each with the position
        after it; ``[]`` when there are none. Damage found while reading is repaired (under
        the writers' lock, counts taken anew) and the read made again."""
        try:
            records, freed = await asyncio.to_thread(self._read_from_cursor)
        except DamageFound as exc:
            self._log.error("spool.damaged", directory=str(self.directory), detail=str(exc))
            async with self._disk:
                self._take(await asyncio.to_thread(self._files.scan))
            records, freed = await asyncio.to_thread(self._read_from_cursor)
        self._freed(freed)
        return records

    async def forwarded(self, upto: Position, count: int, last: Spooled) -> None:
        """The broker confirmed the ``count`` records before ``upto`` (``last`` the final one):
        delete them. An empty spool gives its last segment back to the disk too."""
        freed = await asyncio.to_thread(self._files.commit, upto)
        self.entries -= count
        if self.entries == 0:
            async with self._disk:  # the writer appends to the segment restart deletes
                if self.entries == 0 and self._pending_bytes == 0:
                    freed += await asyncio.to_thread(self._files.restart)
        self._oldest = last.spooled_at if self.entries else None  # an upper bound on age
        self._metrics.spool_forwards.inc(count)
        self._freed(freed)

    async def close(self) -> None:
        """Finish the writes under way, then release the directory."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        async with self._disk:
            self._files.close()
        self.opened = False

    def _read_from_cursor(self) -> tuple[list[tuple[Position, Spooled]], int]:
        """The next records, moving past finished segments; and the bytes that freed."""
        position, freed = self._files.cursor, 0
        while True:
            records = self._files.read(position)
            if records:
                self._oldest = records[0][1].spooled_at
                return records, freed
            following = self._files.after(position)
            if following is None:
                return [], freed
            freed += self._files.commit(following)
            position = following

    def _take(self, found: Recovered) -> None:
        """Counts from a scan of the disk; what it repaired, said."""
        self.entries, self.bytes, self._oldest = found.entries, found.bytes, found.oldest
        for problem in found.problems:
            self._log.error("spool.repaired", directory=str(self.directory), detail=problem)
        self._show()

    def _freed(self, size: int) -> None:
        self.bytes -= size
        self._show()

    async def _write(self) -> None:
        """Write what is pending, batch after batch, until nothing is."""
        while self._pending:
            batch, self._pending = self._pending, []
            size = sum(len(frame) for frame, _ in batch)
            started = time.perf_counter()
            try:
                async with self._disk:
                    self._writing_since = time.monotonic()
                    try:
                        await asyncio.to_thread(self._files.append, [f for f, _ in batch])
                    finally:
                        self._writing_since = None
            except OSError as exc:
                self._pending_bytes -= size
                self._log.error("spool.write_failed", directory=str(self.directory),
                                records=len(batch), error=str(exc))
                _settle(batch, SpoolUnavailable(f"the broker is not confirming and the "
                                                f"spool could not write: {exc.strerror or exc}"))
                continue
            self._pending_bytes -= size
            self._metrics.spool_sync_seconds.observe(time.perf_counter() - started)
            self._recorded(len(batch), size)
            _settle(batch, None)

    def _recorded(self, count: int, size: int) -> None:
        if self.entries == 0:
            self._oldest = time.time()
        self.entries += count
        self.bytes += size
        self._metrics.spool_writes.inc(count)
        self._show()
        self.written.set()

    def _show(self) -> None:
        self._metrics.spool_entries.set(self.entries)
        self._metrics.spool_bytes.set(self.bytes)

    def _oldest_age(self) -> float:
        oldest = self._oldest
        return max(0.0, time.time() - oldest) if self.entries and oldest is not None else 0.0


def _settle(batch: list[tuple[bytes, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

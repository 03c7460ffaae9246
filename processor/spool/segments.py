"""The spool on disk: numbered append-only segment files, a cursor, and a lock.

Layout of ``SPOOL_DIR``::

    LOCK                    held (flock) by the one process using the directory
    000000000007.seg        records (``record``), appended; a new file past segment_bytes
    000000000008.seg
    cursor                  "<segment> <offset>": where the next record to forward starts

Blocking calls, made from threads by ``Spool``. The contract:

- ``append`` returns once the frames are on disk: written, then ``fdatasync`` (the data and
  the file's size, which is what a reader needs; not the times, which nothing reads), and
  after creating a segment an ``fsync`` of the directory (so its name survives a power cut
  too). A failed write or sync raises ``OSError`` with the batch cut back off the file: none
  of it is reported written, so none of it is answered 2xx.
- ``commit`` moves the cursor past forwarded records and deletes segments wholly before it.
  The cursor file is replaced atomically but not synced: after a power cut the cursor may be
  older, and records forwarded already are forwarded again, as duplicates with the same
  message id (never a loss).
- ``open`` recovers: the records from the cursor on are counted, and a segment holding bytes
  that are not records is repaired first (``repair``: a torn last write cut off, damage
  rewritten around, the original kept). Never a silent loss of an acknowledged record.
- Files are made ``0600`` in a ``0700`` directory: they hold the deliveries' bodies.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from processor.errors import ConfigError
from processor.spool import repair
from processor.spool.record import FRAME_BYTES, Spooled, read_frames

_SUFFIX = ".seg"
_READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the spool: a segment's number and a byte offset in it."""

    segment: int
    offset: int


@dataclass
class Recovered:
    """What a scan found: records left to forward, bytes on disk, the oldest record's time,
    and what it had to say (bytes cut or set aside), one line each."""

    entries: int = 0
    bytes: int = 0
    oldest: float | None = None
    problems: list[str] = field(default_factory=list)


class SegmentLog:
    """The files of one spool directory (see the module for the contract)."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._lock_fd = -1
        self._fd = -1  # the segment being appended to, or -1 until the next append
        self.end = Position(0, 0)  # after the last synced record: readers stop here
        self.cursor = Position(0, 0)  # the next record to forward

    def open(self) -> Recovered:
        """Take the lock and recover (``ConfigError`` if another process holds it)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock()
        return self.scan()

    def scan(self) -> Recovered:
        """Count what is left to forward, repairing what is damaged (see the module)."""
        self._close_segment()
        self.cursor = self._read_cursor()
        self.end = self.cursor
        found = Recovered()
        for number in self._segments():
            if number < self.cursor.segment:
                self._path(number).unlink()
                continue
            start = 0
            if number == self.cursor.segment:
                start = min(self.cursor.offset, self._path(number).stat().st_size)
                if start != self.cursor.offset:  # a cursor past the data: at its end
                    self._write_cursor(Position(number, start))
            count, first, end = self._count(number, start, found.problems)
            found.entries, found.bytes = found.entries + count, found.bytes + end
            found.oldest = found.oldest if found.oldest is not None else first
            self.end = Position(number, end)
        return found

    def append(self, frames: list[bytes]) -> None:
        """Write ``frames`` in order and sync; raises ``OSError`` with nothing appended."""
        segment, offset = self.end.segment, self.end.offset
        try:
            for frame in frames:
                segment, offset = self._room_for(segment, offset, len(frame))
                written = os.write(self._fd, frame)
                if written != len(frame):
                    raise OSError(f"short write: {written} of {len(frame)} bytes")
                offset += written
            os.fdatasync(self._fd)
        except OSError:
            self._cut_back()
            raise
        self.end = Position(segment, offset)

    def read(self, start: Position) -> list[tuple[Position, Spooled]]:
        """The records from ``start`` to the end of its segment or of what is synced (about
        4 MiB at most, or one larger record), each with the position after it."""
        stop = self.end.offset if start.segment == self.end.segment else None
        try:
            file = open(self._path(start.segment), "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            return []
        with file:
            file.seek(start.offset)
            room = _READ_CHUNK if stop is None else min(stop - start.offset, _READ_CHUNK)
            data = file.read(room)
            if len(data) >= FRAME_BYTES and _frame_size(data) > len(data):  # a large record
                more = _frame_size(data) - len(data)
                if stop is None or start.offset + len(data) + more <= stop:
                    data += file.read(more)
        return [(Position(start.segment, start.offset + end), Spooled.decode(payload))
                for end, payload in read_frames(data)]

    def after(self, position: Position) -> Position | None:
        """The start of the next segment when ``position`` is at the end of a finished one;
        ``None`` at the end of the spool. Raises ``DamageFound`` when bytes are left that are
        not records (damaged since ``open``): the caller ``scan``s again, which repairs."""
        if position.segment >= self.end.segment:
            return None
        path = self._path(position.segment)
        if path.exists() and path.stat().st_size > position.offset:
            raise DamageFound(f"{path.name}: unreadable after offset {position.offset}")
        later = [n for n in self._segments() if n > position.segment]
        return Position(min(later), 0) if later else None

    def commit(self, cursor: Position) -> int:
        """Move the cursor to ``cursor`` and delete the segments before it; the bytes freed."""
        self._write_cursor(cursor)
        freed = 0
        for number in self._segments():
            if number < cursor.segment:
                freed += self._path(number).stat().st_size
                self._path(number).unlink()
        return freed

    def restart(self) -> int:
        """With everything forwarded (cursor at the end), delete the last segment too, so an
        empty spool holds no bytes; the next append starts a new one. The cursor moves
        first: a crash between the two leaves a forwarded segment, never a cursor into a
        segment that is gone. The bytes freed."""
        self._close_segment()
        following = Position(self.end.segment + 1, 0)
        freed = self.commit(following)
        self.end = following
        return freed

    def close(self) -> None:
        self._close_segment()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _lock(self) -> None:
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"the spool directory {self.directory} is in use by another "
                              "process: each ingress needs a SPOOL_DIR of its own") from None
        self._lock_fd = fd

    def _read_cursor(self) -> Position:
        """The cursor file's position, moved to the first segment there is when its own is
        gone (a crash in ``restart``); the oldest segment when there is no cursor."""
        segments = self._segments()
        try:
            number, offset = (self.directory / "cursor").read_text().split()
            cursor = Position(int(number), int(offset))
        except (FileNotFoundError, ValueError):  # new, or torn: forward from the oldest
            return Position(segments[0] if segments else 0, 0)
        if cursor.segment in segments:
            return cursor
        later = [n for n in segments if n > cursor.segment]
        return Position(later[0], 0) if later else Position(cursor.segment + 1, 0)

    def _write_cursor(self, cursor: Position) -> None:
        temporary = self.directory / "cursor.tmp"
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f"{cursor.segment} {cursor.offset}\n".encode())
        finally:
            os.close(fd)
        os.replace(temporary, self.directory / "cursor")
        self.cursor = cursor

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*" + _SUFFIX)
                      if p.stem.isdigit())

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{_SUFFIX}"

    def _count(self, number: int, start: int,
               problems: list[str]) -> tuple[int, float | None, int]:
        """Count a segment's records from ``start``, repairing it first if it needs it:
        (count, time of the first, its length)."""
        last = number == self._segments()[-1]
        counted = repair.count(self._path(number), start, last=last)
        problems.extend(counted.problems)
        if counted.rewritten:
            _sync_directory(self.directory)
            if self.cursor.segment == number:
                self._write_cursor(Position(number, 0))
        return counted.records, counted.first, counted.length

    def _room_for(self, segment: int, offset: int, size: int) -> tuple[int, int]:
        """Open the segment to append to, rolling to a new one (the old one synced first)
        when ``size`` more bytes would pass segment_bytes, or when the file is not as long
        as we think (a failed cut-back); the new (segment, offset)."""
        if offset and offset + size > self._segment_bytes:
            if self._fd >= 0:
                os.fdatasync(self._fd)
                self._close_segment()
            segment, offset = segment + 1, 0
        if self._fd < 0:
            path = self._path(segment)
            created = not path.exists()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                               0o600)
            if os.fstat(self._fd).st_size != offset:  # O_APPEND would write elsewhere
                self._close_segment()
                return self._room_for(segment + 1, 0, size)
            if created:
                _sync_directory(self.directory)  # the name, durable before its records
        return segment, offset

    def _cut_back(self) -> None:
        """Undo a failed batch: back to ``end``, segments made since deleted."""
        self._close_segment()
        for number in self._segments():
            if number > self.end.segment:
                self._path(number).unlink(missing_ok=True)
        if self._path(self.end.segment).exists():
            os.truncate(self._path(self.end.segment), self.end.offset)

    def _close_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class DamageFound(OSError):
    """A segment holds bytes that are not records, found while reading (see ``after``)."""


def _frame_size(data: bytes) -> int:
    return FRAME_BYTES + int.from_bytes(data[8:12])


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

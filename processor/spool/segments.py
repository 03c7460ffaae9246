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
- ``open`` recovers: the records from the cursor on are counted; the last segment's torn
  tail (a crash mid-write) is cut off; an unreadable record before the last segment (a disk
  fault) is reported and its file renamed ``*.corrupt`` for an operator, never deleted.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from processor.errors import ConfigError
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
    """What ``open`` found: records left to forward, bytes on disk, the oldest record's time,
    and the problems it reported (corrupt segments set aside)."""

    entries: int
    bytes: int
    oldest: float | None
    problems: list[str]


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
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        self.cursor = self._read_cursor()
        self.end = Position(self.cursor.segment, self.cursor.offset)
        found = Recovered(0, 0, None, [])
        for number in self._segments():
            if number < self.cursor.segment:
                self._path(number).unlink()
                continue
            start = self.cursor.offset if number == self.cursor.segment else 0
            count, first, end, length = self._scan(number, start)
            found.entries, found.bytes = found.entries + count, found.bytes + end
            found.oldest = found.oldest if found.oldest is not None else first
            if end < length:
                found.problems.extend(self._cut(number, end, length))
            self.end = Position(number, end)
        self.cursor = min(self.cursor, self.end)  # a cursor past what is on disk
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
        """The start of the segment after ``position``'s, if ``position`` is at the end of
        a finished segment; a segment with unreadable bytes left is set aside (renamed
        ``*.corrupt``, reported by the ``OSError`` raised)."""
        if position.segment >= self.end.segment:
            return None
        path = self._path(position.segment)
        if path.exists() and path.stat().st_size > position.offset:
            path.rename(path.with_suffix(".corrupt"))
            raise OSError(f"{path.name}: unreadable after offset {position.offset}; "
                          "set aside as .corrupt")
        later = [n for n in self._segments() if n > position.segment]
        return Position(min(later), 0) if later else None

    def commit(self, cursor: Position) -> int:
        """Move the cursor to ``cursor``, delete the segments before it; the bytes freed."""
        freed = 0
        for number in self._segments():
            if number < cursor.segment:
                freed += self._path(number).stat().st_size
                self._path(number).unlink()
        self.cursor = cursor
        temporary = self.directory / "cursor.tmp"
        temporary.write_text(f"{cursor.segment} {cursor.offset}\n")
        os.replace(temporary, self.directory / "cursor")
        return freed

    def restart(self) -> int:
        """With everything forwarded (cursor at the end), delete the last segment too, so an
        empty spool holds no bytes; the next append starts a new one. The bytes freed."""
        self._close_segment()
        freed = self.end.offset
        self._path(self.end.segment).unlink(missing_ok=True)
        self.end = Position(self.end.segment + 1, 0)
        return freed + self.commit(self.end)

    def close(self) -> None:
        self._close_segment()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _lock(self) -> None:
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"the spool directory {self.directory} is in use by another "
                              "process: each ingress needs a SPOOL_DIR of its own") from None
        self._lock_fd = fd

    def _read_cursor(self) -> Position:
        try:
            segment, offset = (self.directory / "cursor").read_text().split()
            return Position(int(segment), int(offset))
        except (FileNotFoundError, ValueError):  # new, or torn: forward from the oldest
            segments = self._segments()
            return Position(segments[0] if segments else 0, 0)

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*" + _SUFFIX)
                      if p.stem.isdigit())

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{_SUFFIX}"

    def _scan(self, number: int, start: int) -> tuple[int, float | None, int, int]:
        """Count the intact records of a segment from ``start``: (count, time of the first,
        end of the last intact one, file length)."""
        data = self._path(number).read_bytes()
        count, first, end = 0, None, start
        for after, payload in read_frames(data, start):
            count, end = count + 1, after
            if first is None:
                first = Spooled.decode(payload).spooled_at
        return count, first, end, len(data)

    def _cut(self, number: int, end: int, length: int) -> list[str]:
        """Cut a torn tail off the last segment; set aside an earlier unreadable one."""
        if number == self._segments()[-1]:
            os.truncate(self._path(number), end)
            return []
        corrupt = self._path(number).with_suffix(".corrupt")
        self._path(number).rename(corrupt)
        return [f"{corrupt.name}: {length - end} bytes after offset {end} are unreadable; "
                "the file is kept for an operator and its readable records were counted"]

    def _room_for(self, segment: int, offset: int, size: int) -> tuple[int, int]:
        """Open the segment to append to, rolling to a new one (the old one synced first)
        when ``size`` more bytes would pass segment_bytes; the new (segment, offset)."""
        if offset and offset + size > self._segment_bytes:
            if self._fd >= 0:
                os.fdatasync(self._fd)
                self._close_segment()
            segment, offset = segment + 1, 0
        if self._fd < 0:
            path = self._path(segment)
            created = not path.exists()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
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


def _frame_size(data: bytes) -> int:
    return FRAME_BYTES + int.from_bytes(data[8:12])


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

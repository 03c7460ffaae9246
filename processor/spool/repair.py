"""Counting a segment's records, and repairing a segment that holds bytes that are not records.

Two kinds of such bytes, told apart by what follows them:

- **A torn last write**: nothing intact after them, in the last segment. A crash (or a power
  cut) during a write leaves a frame short or failing its CRC; that write was never synced, so
  never acknowledged. Cut off, and said.
- **Damage**: intact records after them, or any unreadable bytes in a segment that was
  finished (synced whole before the next began): a disk fault. The segment is rewritten with
  every intact record (``record.scan_frames`` finds them past the damage), synced, and put in
  its place; the original is kept beside it as ``<name>.<pid>.corrupt`` for an operator. The
  records inside the damaged bytes are lost, and said, with how many bytes.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from processor.spool.record import Spooled, scan_frames


@dataclass
class Counted:
    """A segment's intact records from the start asked for, its length afterwards, whether
    it was rewritten (its records then start at offset 0), and what was said."""

    records: int = 0
    first: float | None = None  # when the first of them was spooled
    length: int = 0
    rewritten: bool = False
    problems: list[str] = field(default_factory=list)


def count(path: Path, start: int, *, last: bool) -> Counted:
    """Count the records of the segment at ``path`` from ``start``, repairing it first if
    it needs it (see the module); ``last``: it is the segment being appended to."""
    data = path.read_bytes()
    frames = list(scan_frames(data, start))
    end = frames[-1][1] if frames else start
    contiguous = (not frames or frames[0][0] == start) and all(
        a[1] == b[0] for a, b in itertools.pairwise(frames))
    counted = Counted(records=len(frames), length=end,
                      first=Spooled.decode(frames[0][2]).spooled_at if frames else None)
    if contiguous and end == len(data):
        return counted
    if contiguous and last:
        os.truncate(path, end)
        counted.problems.append(f"{path.name}: cut {len(data) - end} bytes of a torn last write")
        return counted
    counted.length = _rewrite(path, b"".join(data[a:b] for a, b, _ in frames))
    counted.rewritten = True
    lost = len(data) - start - counted.length
    counted.problems.append(f"{path.name}: {lost} damaged bytes (their records lost) around "
                            f"{len(frames)} intact records, kept; the original is beside it "
                            "as .corrupt")
    return counted


def _rewrite(path: Path, clean: bytes) -> int:
    """Put ``clean`` in ``path``'s place, synced, the original kept as ``.corrupt``; the new
    length. The caller syncs the directory."""
    fresh = path.with_suffix(".repair")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, clean)
        os.fsync(fd)
    finally:
        os.close(fd)
    kept = path.with_suffix(f".{os.getpid()}.corrupt")
    kept.unlink(missing_ok=True)
    os.link(path, kept)
    os.replace(fresh, path)
    return len(clean)

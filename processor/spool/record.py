"""One spooled delivery, and its bytes on disk.

A record is a frame: ``magic (4) | payload length (4) | CRC-32 of the payload (4)``, then the
payload: ``meta length (4) | meta (JSON) | body``. The meta holds what a direct publish would
send besides the body (exchange, routing key, message id, headers) and when it was spooled.

The CRC is what makes a crash safe to recover from: a frame cut short by a crash mid-write, or
whose bytes never reached the disk, fails its length or its CRC, and everything from it on is
the unwritten tail (``read_frames`` stops there). JSON for the meta because headers are text
and ints only (``processor.message.headers_of``) and an operator can read a segment with
``strings``; the body stays raw bytes, never re-encoded.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

MAGIC = b"ZES1"
_FRAME = struct.Struct(">4sII")
_META = struct.Struct(">I")
FRAME_BYTES = _FRAME.size


class Spooled(NamedTuple):
    """A delivery as the ingress would have published it, and when it was spooled."""

    exchange: str
    routing_key: str
    message_id: str
    headers: dict[str, Any]
    body: bytes
    spooled_at: float  # seconds since the epoch

    def encode(self) -> bytes:
        """The whole frame of this record."""
        meta = json.dumps({"x": self.exchange, "r": self.routing_key, "m": self.message_id,
                           "h": self.headers, "t": self.spooled_at},
                          separators=(",", ":"), ensure_ascii=False).encode()
        payload = b"".join((_META.pack(len(meta)), meta, self.body))
        return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes) -> Spooled:
        """The record of a checked payload (``read_frames`` checked it)."""
        (size,) = _META.unpack_from(payload)
        meta = json.loads(payload[_META.size:_META.size + size])
        return cls(meta["x"], meta["r"], meta["m"], meta["h"],
                   payload[_META.size + size:], float(meta["t"]))


def read_frames(data: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(end offset, payload)`` of each whole, intact frame in ``data`` from ``start``, in
    order; stops at the first frame that is short, of another magic, or fails its CRC."""
    offset = start
    while (payload := _frame_at(data, offset)) is not None:
        offset += FRAME_BYTES + len(payload)
        yield offset, payload


def scan_frames(data: bytes, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(start, end, payload)`` of every intact frame in ``data`` from ``start``, skipping
    what is not one (a damaged frame) to the next magic that begins an intact frame: how a
    damaged segment's readable records are found. A false start would need a CRC to match."""
    offset = start
    while offset + FRAME_BYTES <= len(data):
        payload = _frame_at(data, offset)
        if payload is None:
            offset = data.find(MAGIC, offset + 1)
            if offset < 0:
                return
            continue
        end = offset + FRAME_BYTES + len(payload)
        yield offset, end, payload
        offset = end


def _frame_at(data: bytes, offset: int) -> bytes | None:
    """The payload of the intact frame at ``offset``, else ``None``."""
    if offset + FRAME_BYTES > len(data):
        return None
    magic, size, crc = _FRAME.unpack_from(data, offset)
    end = offset + FRAME_BYTES + size
    if magic != MAGIC or end > len(data):
        return None
    payload = data[offset + FRAME_BYTES:end]
    return payload if zlib.crc32(payload) == crc else None

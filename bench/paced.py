"""Open-loop load at a fixed offered rate, for when wrk2 is not installable (Debian lacks it).

Request ``i`` is due at ``start + i / rate`` whatever happened to earlier ones; a scheduler
puts it on a queue at that instant and one of ``connections`` keep-alive HTTP/1.1 connections
sends it. Latency counts from the instant it was *due*, not sent, so a stall of the server
shows in the percentiles instead of silently slowing the load (no coordinated omission, the
way wrk2 measures). ``lag_p99_ms`` says how late the scheduler itself was: if it is large,
the load generator, not the server, was the limit. HTTP is spoken directly on asyncio streams
(pre-built request bytes, a minimal response parser) to keep the generator's own CPU low.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.workload import SignedDelivery


@dataclass
class PacedResult:
    """What one paced run saw; ``due`` maps an event id to the instant it was due."""

    rate: float
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lags_ms: list[float] = field(default_factory=list)
    due: dict[str, float] = field(default_factory=dict)

    @property
    def answered_per_second(self) -> float:
        return len(self.latencies_ms) / max(self.seconds, 1e-9)


def raw_request(host: str, port: int, path: str, delivery: SignedDelivery) -> bytes:
    """The exact bytes of one signed POST."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\n"
            f"zenoti-webhook-signature: {delivery.signature}\r\n"
            f"Content-Length: {len(delivery.body)}\r\n\r\n")
    return head.encode() + delivery.body


async def run(host: str, port: int, path: str, deliveries: Sequence[SignedDelivery], *,
              rate: float, seconds: float, connections: int = 64) -> PacedResult:
    """Offer ``rate`` deliveries per second for ``seconds`` (bounded by ``deliveries``)."""
    result = PacedResult(rate)
    count = min(len(deliveries), int(rate * seconds))
    work: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    senders = [asyncio.create_task(_sender(host, port, work, result))
               for _ in range(connections)]
    started = time.monotonic()
    for index in range(count):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.lags_ms.append((time.monotonic() - due) * 1000)
        result.due[deliveries[index].event_id] = due
        work.put_nowait((raw_request(host, port, path, deliveries[index]), due))
    for _ in senders:
        work.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*senders), timeout=seconds + 30)
    result.seconds = time.monotonic() - started
    return result


async def _sender(host: str, port: int, work: asyncio.Queue[tuple[bytes, float] | None],
                  result: PacedResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (item := await work.get()) is not None:
            request, due = item
            writer.write(request)
            status = await _response_status(reader)
            result.latencies_ms.append((time.monotonic() - due) * 1000)
            result.statuses[status] += 1
    finally:
        writer.close()


async def _response_status(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return head[9:12].decode()

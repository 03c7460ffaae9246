"""``python -m bench.replay [--messages N] [--window W]``: the archive's replay figures.

In the benchmark vhost, ``N`` deliveries (default 100,000, as the ingress publishes them:
``zenoti.ingress``, persistent, confirmed, ``received_at`` = the time of sending) go into a
fresh archive; the window is the ``W`` (default 10,000) sent from the middle on. Measured:

- finding the window's start: seconds from ``basic.consume`` to the first delivery of the
  window, by timestamp (``x-stream-offset`` = its start, as ``replay`` does) and, for
  comparison, by reading from the first offset until a delivery of the window comes; and how
  many deliveries before the window the timestamp seek still reads (chunks, whole seconds);
- replaying the window to one handler's work queue at an unbounded rate: copies/s; and a
  dry run (reading and selecting only): deliveries/s;
- what the archive costs the ingress: the confirm's median and p99 of one delivery at a time
  (as one request waits for its own) through ``zenoti.ingress`` (work queue and stream) and
  straight to ``zenoti.events`` (work queue alone, as before the archive).

Writes ``bench/results/replay.json``; takes about a minute here. Every queue and exchange it
declared is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractConnection

from bench import broker, machine
from processor.broker import stream, topology
from processor.broker.stream import ARCHIVE, Offset
from processor.message import MessageMeta
from processor.ops import replay

RESULTS = Path(__file__).parent / "results" / "replay.json"
BINDINGS = [topology.Binding("membership-freeze", ("Guest.Membership.Freeze",))]
BODY = json.dumps({"event_id": "x" * 24, "event_type": "Guest.Membership.Freeze",
                   "data": {"user_membership_id": "u" * 24, "center_id": "c" * 36}}).encode()


async def fill(connection: AbstractConnection, count: int, window: int) -> tuple[datetime,
                                                                                 datetime]:
    """Send ``count`` deliveries; the receipt times of the window's first and last."""
    channel = await connection.channel(publisher_confirms=True)
    ingress = await channel.get_exchange(topology.INGRESS)
    middle, marks, pending = count // 2, {}, []
    for n in range(count):
        received = datetime.now(UTC)
        if n in (middle, middle + window - 1):
            marks[n] = received
        pending.append(ingress.publish(aio_pika.Message(
            BODY, message_id=f"default:{n}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json", headers={
                "tenant": "default", "event_type": "Guest.Membership.Freeze",
                "received_at": received.isoformat()}), "guest.membership.freeze"))
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return marks[middle], marks[middle + window - 1]


async def first_of_window(connection: AbstractConnection, start: Offset,
                          since: datetime) -> tuple[float, int]:
    """Seconds to the window's first delivery reading from ``start``, and deliveries read
    before it."""
    began, before = time.perf_counter(), 0
    channel = await connection.channel()
    async with channel, contextlib.aclosing(stream.read(channel, ARCHIVE, start,
                                                        idle=10.0)) as messages:
        async for message in messages:
            received = MessageMeta.from_headers(message.headers).received_at
            if received is not None and received >= since:
                return time.perf_counter() - began, before
            before += 1
    raise RuntimeError("the window was not found")


async def replayed(connection: AbstractConnection, since: datetime, until: datetime,
                   dry_run: bool) -> tuple[replay.Summary, float]:
    plan = replay.Plan(replay.Window(since, until), BINDINGS, by="bench", rate=1e9,
                       dry_run=dry_run, late=0.01, idle=1.0)
    reading = await connection.channel()
    publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
    began = time.perf_counter()
    summary = await replay.replay(reading, publishing, plan, replay.Summary())
    return summary, time.perf_counter() - began  # stopped past the window, not by idling


async def confirm_latency(connection: AbstractConnection, exchange: str,
                          count: int = 2000) -> tuple[float, float]:
    """Median and p99 milliseconds of a confirm, one delivery at a time."""
    channel = await connection.channel(publisher_confirms=True)
    target = await channel.get_exchange(exchange)
    seconds = []
    for n in range(count):
        began = time.perf_counter()
        await target.publish(aio_pika.Message(
            BODY, message_id=f"latency:{n}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            "guest.membership.freeze")
        seconds.append(time.perf_counter() - began)
    seconds.sort()
    return (round(seconds[count // 2] * 1000, 2), round(seconds[count * 99 // 100] * 1000, 2))


async def measure(count: int, window: int) -> dict[str, object]:
    connection = await aio_pika.connect(broker.URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(ARCHIVE)
        await topology.declare(channel, BINDINGS)
        began = time.perf_counter()
        since, last = await fill(connection, count, window)
        filled = time.perf_counter() - began
        until = last + timedelta(microseconds=1)
        by_time, skipped = await first_of_window(connection, since, since)
        by_scan, scanned = await first_of_window(connection, "first", since)
        dry, dry_seconds = await replayed(connection, since, until, dry_run=True)
        sent, sent_seconds = await replayed(connection, since, until, dry_run=False)
        await (await channel.get_queue("zenoti.h.membership-freeze")).purge()
        archived = await confirm_latency(connection, topology.INGRESS)
        direct = await confirm_latency(connection, topology.EVENTS)
        await (await channel.get_queue("zenoti.h.membership-freeze")).purge()
    return {"messages": count, "window": window, "fill_per_second": round(count / filled),
            "seek_by_timestamp_seconds": round(by_time, 4),
            "read_before_window_by_timestamp": skipped,
            "seek_by_scan_seconds": round(by_scan, 3), "read_before_window_by_scan": scanned,
            "dry_run_read": dry.read, "dry_run_per_second": round(dry.read / dry_seconds),
            "replayed": sum(sent.published.values()), "replay_seconds": round(sent_seconds, 2),
            "replayed_per_second": round(sum(sent.published.values()) / sent_seconds),
            "confirm_ms_with_archive": {"p50": archived[0], "p99": archived[1]},
            "confirm_ms_without_archive": {"p50": direct[0], "p99": direct[1]}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=10_000)
    args = parser.parse_args(argv)
    broker.ensure_vhost()
    load = os.getloadavg()[0]
    try:
        figures = asyncio.run(measure(args.messages, args.window))
    finally:
        asyncio.run(broker.delete_all())
    # Others' work on the machine shows here: the figures are only as good as it was quiet.
    figures["load_average_1m"] = {"before": round(load, 2), "after": round(os.getloadavg()[0], 2)}
    figures["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["machine"] = machine.describe()
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``zenoti-events replay`` and ``zenoti-events archive stats``: the commands over the archive.

``replay --since T [--until T] [--tenant] [--event-type] [--handler NAME ...] [--dry-run]
[--rate N] [--by WHO]`` re-runs the deliveries received in the window through their handlers
(``processor.ops.replay`` has the contract); a progress line on stderr, then a summary. The
handlers and the types each takes are the installed ones after ``HANDLER_EVENT_TYPES``, as the
workers bind them. ``archive stats [--since T] [--until T] [--limit N] [--json]`` prints the
archive's ends and a count by event type (``processor.ops.archive``).

Exit codes: 0 done; 1 the broker failed (what was sent before is in the summary); 2 a handler
named that is not installed, or invalid settings. Event types came from outside: printed with
their control characters escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import socket
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika

from processor import logs
from processor.broker.stream import ARCHIVE
from processor.errors import BrokerUnavailable
from processor.ops import archive, replay
from processor.settings import Settings

_T = TypeVar("_T")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def add_parsers(sub: Any) -> None:
    """The ``replay`` and ``archive`` commands."""
    again = sub.add_parser("replay", help="re-run archived deliveries through their handlers")
    again.add_argument("--since", type=_instant, required=True, help="received at or after")
    again.add_argument("--until", type=_instant, help="received before (default: now)")
    again.add_argument("--tenant", help="only this tenant's deliveries")
    again.add_argument("--event-type", help="only this type (any case)")
    again.add_argument("--handler", action="append", metavar="NAME", help="only through this "
                       "handler (repeatable); default: every handler that takes each type")
    again.add_argument("--dry-run", action="store_true", help="count, send nothing")
    again.add_argument("--rate", type=_positive, default=1.0,
                       help="copies/s (default 1: about 0.4 Zenoti calls/s, 40 %% of one "
                            "organisation's budget at the measured 0.385 calls an event)")
    again.add_argument("--by", help="who replays, in x-zenoti-replayed-by (default user@host)")
    again.add_argument("--late", type=_seconds, default=300.0, help="seconds a delivery may "
                       "reach the archive after its receipt (spooled, clocks apart; default 300)")
    again.add_argument("--idle", type=_positive, default=2.0,
                       help="seconds without a newer delivery that end the reading")
    again.set_defaults(command=_replay)
    kept = sub.add_parser("archive", help="what the archive stream holds")
    actions = kept.add_subparsers(required=True, metavar="ACTION")
    counted = actions.add_parser("stats", help="first and last delivery, count by event type")
    counted.add_argument("--since", type=_instant, help="count from this receipt time")
    counted.add_argument("--until", type=_instant, help="count up to this receipt time")
    counted.add_argument("--limit", type=int, default=100_000, help="count at most N")
    counted.add_argument("--idle", type=_positive, default=2.0,
                         help="seconds without a newer delivery that end the reading")
    counted.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    counted.set_defaults(command=_stats)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    bindings = archive.handler_bindings(settings)
    unknown = sorted(set(args.handler or ()) - {b.handler for b in bindings})
    if unknown:
        print(f"zenoti-events replay: no installed handler named {', '.join(unknown)}",
              file=sys.stderr)
        return 2
    window = replay.Window(args.since, args.until or datetime.now(UTC), args.tenant,
                           args.event_type)
    plan = replay.Plan(window, bindings, frozenset(args.handler) if args.handler else None,
                       args.by or _who(), args.rate,
                       args.dry_run, args.late, args.idle, settings.confirm_timeout)
    summary, line = replay.Summary(), _Line()
    failed = _broker_run(archive.run_replay(settings, plan, summary, line), "replay") is None
    line.show(summary)
    print(file=sys.stderr)
    print(_summary(summary, plan))
    if not args.dry_run:
        logs.get_logger().info("archive.replayed", read=summary.read, selected=summary.selected,
                               published=dict(summary.published), by=plan.by,
                               since=window.since.isoformat(), until=window.until.isoformat())
    return 1 if failed else 0


class _Line:
    """The progress line on stderr, rewritten at most every ``every`` seconds (and by
    ``show``)."""

    def __init__(self, every: float = 0.25) -> None:
        self._every = every
        self._next = 0.0

    def __call__(self, summary: replay.Summary) -> None:
        if time.monotonic() >= self._next:
            self.show(summary)

    def show(self, summary: replay.Summary) -> None:
        self._next = time.monotonic() + self._every
        sys.stderr.write(f"\rread {summary.read}  selected {summary.selected}  sent "
                         f"{sum(summary.published.values())}  skipped "
                         f"{sum(summary.skipped.values())}  offset {summary.last_offset}")
        sys.stderr.flush()


def _summary(summary: replay.Summary, plan: replay.Plan) -> str:
    sent = "would send" if plan.dry_run else "sent"
    lines = [f"read {summary.read} deliveries (offsets {summary.first_offset}.."
             f"{summary.last_offset}), selected {summary.selected} received in "
             f"[{plan.window.since.isoformat()}, {plan.window.until.isoformat()})"]
    lines += [f"  {sent} {count} to {handler}" for handler, count in
              sorted(summary.published.items())] or [f"  {sent} nothing"]
    lines += [f"  skipped {count}: {why}" for why, count in sorted(summary.skipped.items())]
    return "\n".join(lines)


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    async def count() -> archive.Stats:
        connection = await archive.connection(settings, "archive")
        async with connection:
            return await archive.stats(connection, since=args.since, until=args.until,
                                       limit=args.limit, idle=args.idle)

    found = _broker_run(count(), "archive")
    if found is None:
        return 1
    print(json.dumps(_as_json(found), indent=2) if args.json else _stats_text(found))
    return 0


def _stats_text(found: archive.Stats) -> str:
    def edge(name: str, at: archive.Edge | None) -> str:
        when = at.received_at.isoformat() if at and at.received_at else "-"
        return f"{name:<6} offset {at.offset if at else '-'}  received {when}"

    counted = (f"counted {found.counted} (offsets {found.counted_from}..{found.counted_to}"
               f"{', cut at --limit' if found.cut else ''}): bodies {found.counted_bytes} "
               f"bytes; about {found.estimated_bytes} for all (AMQP shows no size on disk)")
    rows = [f"  {count:>9}  {_printable(kind)}" for kind, count in found.by_type.most_common()]
    return "\n".join([f"{ARCHIVE}: {found.messages} deliveries",
                      edge("first", found.first), edge("last", found.last), counted,
                      "  {:>9}  EVENT TYPE".format("COUNT"), *rows])


def _as_json(found: archive.Stats) -> dict[str, Any]:
    def edge(at: archive.Edge | None) -> dict[str, Any] | None:
        return None if at is None else {
            "offset": at.offset,
            "received_at": at.received_at.isoformat() if at.received_at else None}

    return {"messages": found.messages, "first": edge(found.first), "last": edge(found.last),
            "counted": found.counted, "counted_from": found.counted_from,
            "counted_to": found.counted_to, "cut": found.cut,
            "counted_bytes": found.counted_bytes, "estimated_bytes": found.estimated_bytes,
            "by_type": dict(found.by_type.most_common())}


def _broker_run(work: Coroutine[Any, Any, _T], name: str) -> _T | None:
    """Run ``work`` and return what it returns; ``None`` when the broker failed (said on
    stderr)."""
    try:
        return asyncio.run(work)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        print(f"\nzenoti-events {name}: no stream {ARCHIVE} (is the topology declared? "
              "zenoti-events topology)", file=sys.stderr)
        return None
    except (BrokerUnavailable, aio_pika.exceptions.AMQPError, OSError) as exc:
        print(f"\nzenoti-events {name}: broker: {_printable(str(exc) or repr(exc))}",
              file=sys.stderr)
        return None


def _printable(text: str, most: int = 200) -> str:
    escaped = _UNPRINTABLE.sub(lambda c: f"\\x{ord(c.group()):02x}" if ord(c.group()) <= 0xFF
                               else f"\\u{ord(c.group()):04x}", text)
    return escaped if len(escaped) <= most else escaped[:most] + "..."


def _who() -> str:
    """``user@host``; a container's uid may have no user name (no passwd entry)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_MAX_SECONDS = 7 * 86_400.0  # a week: past the archive's default age, never unbounded
_MAX_RATE = 1000.0  # copies a second: the rate bound cannot be lifted with inf or nan


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= _MAX_SECONDS:  # False for nan too
        raise argparse.ArgumentTypeError(f"must be from 0 to {_MAX_SECONDS:g}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= _MAX_RATE:  # False for nan and inf too
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {_MAX_RATE:g}")
    return value

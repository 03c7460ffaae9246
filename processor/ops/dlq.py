"""``zenoti-events dlq``: list, show, replay and purge parked messages.

LOT is a handler's name (its parking lot ``zenoti.h.<handler>.dead``) or ``unrouted``. Each
action is one pass over the lot that leaves every message it does not take in place and in
order (``processor.ops.parking`` explains how, and why nothing is requeued to look at it).
Exit codes: 0 done; 1 nothing found, no such lot, or the broker failed; 2 refused (purge
without ``--yes``) or invalid settings.

What is printed came from outside (ids, types, headers and bodies of messages anyone could
have published): every text is printed with its control characters escaped (C0, DEL, C1 and
the invisible Unicode formatting ones, e.g. ESC as ``\\x1b``), so no message can move the
cursor, recolour or rewrite the operator's terminal, and cut to a bounded length (``_LIMITS``).
``--json`` stays valid JSON: its strings are escaped the JSON way, and bounded alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import aio_pika

from processor import logs
from processor.broker.connect import connect
from processor.errors import BrokerUnavailable
from processor.ops.parking import Filter, ParkedMessage, ParkingLot, Progress
from processor.ops.triage import survey
from processor.settings import Settings
from processor.worker import plugins

UNROUTED_LOT = "unrouted"
_Work = Callable[[ParkingLot], Awaitable[int]]
# Characters printed at most per field: a table cell, a header value, an error, a body.
_LIMITS = {"cell": 80, "value": 1000, "error": 2000, "body": 100_000}
_HEADERS_SHOWN = 200
# C0 and C1 controls, DEL, and the invisible ones that reorder or hide text (bidi, zero width).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e"
                          "\u2060-\u2069\ufeff]")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("dlq", help="list, show, replay or purge parked messages")
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    listing = _action(actions, "list", "list parked messages", _list)
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    shown = _action(actions, "show", "print one message's headers and body", _show, filters=False)
    shown.add_argument("message_id", metavar="MESSAGE_ID")
    replay = _action(actions, "replay", "send matching messages back to be handled", _replay)
    replay.add_argument("--rate", type=_positive, default=10.0, help="messages/s (default 10)")
    replay.add_argument("--limit", type=int, default=None, help="replay at most N messages")
    replay.add_argument("--dry-run", action="store_true", help="count, move nothing")
    purge = _action(actions, "purge", "delete matching messages for good", _purge)
    purge.add_argument("--yes", action="store_true", help="really delete them")
    _action(actions, "types", "event types waiting, and which handler would take each",
            _types)


def _action(actions: Any, name: str, text: str, command: Callable[..., int], *,
            filters: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
    parser.add_argument("lot", metavar="HANDLER|unrouted", help="a handler's name, or unrouted")
    if filters:
        parser.add_argument("--event-type", help="exactly this type (any case)")
        parser.add_argument("--reason", help="e.g. invalid_payload, rejected, delivery_limit")
        parser.add_argument("--since", type=_instant, help="dead (else received) at or after")
        parser.add_argument("--until", type=_instant, help="dead (else received) before")
        parser.add_argument("--id", dest="message_id", help="only this message id")
        parser.add_argument("--tenant", help="only this tenant's messages")
    parser.set_defaults(command=command)
    return parser


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def browse(lot: ParkingLot) -> int:
        messages = await lot.browse(_filter(args))
        # JSON leaves DEL as it is: written as its escape, the text stays the same JSON.
        print(json.dumps([_as_json(m) for m in messages], indent=2).replace("\x7f", "\\u007f")
              if args.json else _listing(messages, summary=lot.key is None))
        return 0

    return _run(settings, args.lot, browse)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def find(lot: ParkingLot) -> int:
        messages = await lot.browse(Filter(message_id=args.message_id))
        for message in messages:  # a duplicate (at-least-once) shows twice
            print(_details(message))
        if not messages:
            print(f"zenoti-events dlq: no message {_shown(repr(args.message_id))} in "
                  f"{_shown(lot.queue)}", file=sys.stderr)
        return 0 if messages else 1

    return _run(settings, args.lot, find)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    async def replay(lot: ParkingLot) -> int:
        count = await lot.replay(_filter(args), rate=args.rate, dry_run=args.dry_run,
                                 limit=args.limit, progress=_bar(sys.stderr))
        print(file=sys.stderr)
        # From unrouted, a message goes back to the lot while still nobody takes its type.
        target = lot.key or f"{lot.exchange}, routed by event type"
        if not args.dry_run:
            _log(args, "dlq.replayed", lot.queue, count)
        done = "would replay" if args.dry_run else "replayed"
        print(f"{done} {count} message(s) from {_shown(lot.queue)} to {_shown(target)}")
        return 0

    return _run(settings, args.lot, replay)


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    where = _filter(args)

    async def purge(lot: ParkingLot) -> int:
        if not args.yes:
            count = len(await lot.browse(where))
            print(f"zenoti-events dlq: refusing to purge without --yes: it would delete "
                  f"{count} message(s) from {_shown(lot.queue)} ({_shown(where.describe())})",
                  file=sys.stderr)
            return 2
        count = await lot.purge(where)
        _log(args, "dlq.purged", lot.queue, count)
        print(f"purged {count} message(s) from {_shown(lot.queue)}")
        return 0

    return _run(settings, args.lot, purge)


def _types(args: argparse.Namespace, settings: Settings) -> int:
    async def summarise(lot: ParkingLot) -> int:
        found = survey(await lot.browse(_filter(args)), plugins.discover(),
                       settings.handler_event_types)
        print(_table(["EVENT TYPE", "COUNT", "FIRST SEEN", "LAST SEEN", "WOULD TAKE IT"], [
            (e.event_type, e.count, _when(e.first_seen), _when(e.last_seen),
             ", ".join(e.candidates) or "-") for e in found]))
        for entry in found:
            if entry.setting:
                print(f"\n{_shown(entry.event_type)} -> {entry.candidates[0]}:\n  "
                      f"{_shown(entry.setting, 'value')}")
        return 0

    return _run(settings, args.lot, summarise)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _run(settings: Settings, lot: str, work: _Work) -> int:
    """Run ``work`` on the lot; report what went wrong as an exit code and one line."""
    try:
        return asyncio.run(_on_lot(settings, lot, work))
    except aio_pika.exceptions.ChannelNotFoundEntity:
        problem = f"no parking lot for {lot!r} (is the topology declared?)"
    except BrokerUnavailable as exc:
        problem = f"stopped, the message in hand is back in its lot: {exc}"
    except (aio_pika.exceptions.AMQPError, OSError) as exc:
        problem = f"broker: {exc!r}"
    print(f"zenoti-events dlq: {_shown(problem, 'error')}", file=sys.stderr)
    return 1


async def _on_lot(settings: Settings, lot: str, work: _Work) -> int:
    async with _channel(settings) as channel:
        handler = None if lot == UNROUTED_LOT else lot
        return await work(ParkingLot(channel, handler, confirm_timeout=settings.confirm_timeout))


@contextlib.asynccontextmanager
async def _channel(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await connect(settings.amqp_url.get_secret_value(), attempt_timeout=10,
                               name="dlq", log=logs.get_logger(component="dlq"))
    async with connection:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)


@contextlib.asynccontextmanager
async def open_lot(settings: Settings, lot: str) -> AsyncIterator[ParkingLot]:
    """The lot behind both ``dlq`` and the console (one implementation of each action)."""
    async with _channel(settings) as channel:
        handler = None if lot == UNROUTED_LOT else lot
        yield ParkingLot(channel, handler, confirm_timeout=settings.confirm_timeout)


def _filter(args: argparse.Namespace) -> Filter:
    return Filter(event_type=args.event_type, reason=args.reason, since=args.since,
                  until=args.until, message_id=args.message_id, tenant=args.tenant)


def _log(args: argparse.Namespace, event: str, queue: str, count: int) -> None:
    # Replay and purge change what is parked: the log keeps a trace of each one.
    logs.get_logger().info(event, queue=queue, count=count, filter=_filter(args).describe())


def _bar(stream: TextIO) -> Progress:
    def show(done: int, total: int) -> None:
        filled = done * 10 // total if total else 10
        stream.write(f"\r[{'#' * filled}{'.' * (10 - filled)}] {done}/{total}")
        stream.flush()

    return show


def _listing(messages: list[ParkedMessage], *, summary: bool) -> str:
    """The table of messages; with ``summary`` (unrouted), first how many of each type."""
    table = _table(["ID", "EVENT TYPE", "REASON", "ATTEMPTS", "AGE"], [
        (m.message_id, m.event_type, m.reason, m.attempts, _age(m.age)) for m in messages])
    text = f"{table}\n{len(messages)} message(s)"
    if not summary:
        return text
    counts = Counter(m.event_type for m in messages).most_common()
    return f"{_table(['EVENT TYPE', 'COUNT'], counts)}\n\n{text}"


def _shown(text: str, limit: str = "cell") -> str:
    """``text`` with its unprintable characters escaped, cut to ``_LIMITS[limit]``."""
    return _clipped(_UNPRINTABLE.sub(_escape, text), _LIMITS[limit])


def _clipped(text: str, most: int) -> str:
    if len(text) <= most:
        return text
    return f"{text[:most]}... ({len(text) - most} more characters)"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _table(titles: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [titles, *[[_shown(str(cell)) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in cells)


def _details(message: ParkedMessage) -> str:
    shown = sorted(message.headers.items())[:_HEADERS_SHOWN]
    headers = "\n".join(f"  {_shown(name)}: {_shown(_value(value), 'value')}"
                        for name, value in shown)
    if len(message.headers) > len(shown):
        headers += f"\n  ... ({len(message.headers) - len(shown)} more headers)"
    return (f"message_id: {_shown(message.message_id, 'value')}\n"
            f"routing_key: {_shown(message.routing_key, 'value')}\n"
            f"reason: {_shown(message.reason, 'value')}\nerror: {_shown(message.error, 'error')}\n"
            f"size: {message.size} bytes\nheaders:\n{headers}\nbody:\n{_body(message.body)}")


def _body(body: bytes) -> str:
    """The body, as indented JSON if it is JSON; its own line breaks kept, all else escaped."""
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        text = body.decode(errors="replace")
    lines = [_UNPRINTABLE.sub(_escape, line) for line in text.split("\n")]
    return _clipped("\n".join(lines), _LIMITS["body"])


def _value(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=_scalar)
    except (ValueError, RecursionError):
        return repr(value)


def _scalar(value: object) -> str:
    # Header types JSON has not: bytes, timestamps, decimals.
    return value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)


def _as_json(message: ParkedMessage) -> dict[str, Any]:
    def bounded(text: str, limit: str = "value") -> str:
        return _clipped(text, _LIMITS[limit])  # json.dumps escapes what it must

    return {
        "message_id": bounded(message.message_id), "event_type": bounded(message.event_type),
        "reason": bounded(message.reason), "error": bounded(message.error, "error"),
        "attempts": message.attempts, "tenant": bounded(message.tenant),
        "routing_key": bounded(message.routing_key), "size": message.size,
        "dead_at": message.dead_at.isoformat() if message.dead_at else None,
        "received_at": message.received_at.isoformat() if message.received_at else None,
        "age_seconds": round(message.age.total_seconds()) if message.age else None,
    }


def _age(age: timedelta | None) -> str:
    if age is None:
        return "?"
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value

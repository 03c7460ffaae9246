"""``zenoti-events dlq``: list, show, replay and purge parked messages.

LOT is a handler's name (its parking lot ``zenoti.h.<handler>.dead``) or ``unrouted``. Each
action is one pass over the lot that leaves every message it does not take in place and in
order (``processor.parking`` explains how, and why nothing is requeued to look at it).
Exit codes: 0 done; 1 nothing found, no such lot, or the broker failed; 2 refused (purge
without ``--yes``) or invalid settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import aio_pika

from processor import logs
from processor.errors import BrokerUnavailable
from processor.parking import Filter, ParkedMessage, ParkingLot, Progress
from processor.settings import Settings

UNROUTED_LOT = "unrouted"
_Work = Callable[[ParkingLot], Awaitable[int]]


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
    parser.set_defaults(command=command)
    return parser


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def browse(lot: ParkingLot) -> int:
        messages = await lot.browse(_filter(args))
        print(json.dumps([_as_json(m) for m in messages], indent=2) if args.json
              else _listing(messages, summary=lot.key is None))
        return 0

    return _run(settings, args.lot, browse)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    async def find(lot: ParkingLot) -> int:
        messages = await lot.browse(Filter(message_id=args.message_id))
        for message in messages:  # a duplicate (at-least-once) shows twice
            print(_details(message))
        if not messages:
            print(f"zenoti-events dlq: no message {args.message_id!r} in {lot.queue}",
                  file=sys.stderr)
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
        print(f"{done} {count} message(s) from {lot.queue} to {target}")
        return 0

    return _run(settings, args.lot, replay)


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    where = _filter(args)

    async def purge(lot: ParkingLot) -> int:
        if not args.yes:
            count = len(await lot.browse(where))
            print(f"zenoti-events dlq: refusing to purge without --yes: it would delete "
                  f"{count} message(s) from {lot.queue} ({_describe(where)})", file=sys.stderr)
            return 2
        count = await lot.purge(where)
        _log(args, "dlq.purged", lot.queue, count)
        print(f"purged {count} message(s) from {lot.queue}")
        return 0

    return _run(settings, args.lot, purge)


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
    print(f"zenoti-events dlq: {problem}", file=sys.stderr)
    return 1


async def _on_lot(settings: Settings, lot: str, work: _Work) -> int:
    async with _channel(settings) as channel:
        handler = None if lot == UNROUTED_LOT else lot
        return await work(ParkingLot(channel, handler, confirm_timeout=settings.confirm_timeout))


@contextlib.asynccontextmanager
async def _channel(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    async with connection:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)


def _filter(args: argparse.Namespace) -> Filter:
    return Filter(event_type=args.event_type, reason=args.reason, since=args.since,
                  until=args.until, message_id=args.message_id)


def _describe(where: Filter) -> str:
    chosen = [f"{name}={value}" for name, value in (
        ("event type", where.event_type), ("reason", where.reason), ("id", where.message_id),
        ("since", where.since), ("until", where.until)) if value is not None]
    return ", ".join(chosen) or "every message"


def _log(args: argparse.Namespace, event: str, queue: str, count: int) -> None:
    # Replay and purge change what is parked: the log keeps a trace of each one.
    logs.get_logger().info(event, queue=queue, count=count, filter=_describe(_filter(args)))


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


def _table(titles: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [titles, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in cells)


def _details(message: ParkedMessage) -> str:
    headers = "\n".join(f"  {name}: {_value(value)}" for name, value in
                        sorted(message.headers.items()))
    try:
        body = json.dumps(json.loads(message.body), indent=2, ensure_ascii=False)
    except ValueError:
        body = message.body.decode(errors="replace")
    return (f"message_id: {message.message_id}\nrouting_key: {message.routing_key}\n"
            f"reason: {message.reason}\nerror: {message.error}\nsize: {message.size} bytes\n"
            f"headers:\n{headers}\nbody:\n{body}")


def _value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _as_json(message: ParkedMessage) -> dict[str, Any]:
    return {
        "message_id": message.message_id, "event_type": message.event_type,
        "reason": message.reason, "error": message.error, "attempts": message.attempts,
        "tenant": message.tenant, "routing_key": message.routing_key, "size": message.size,
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

"""``zenoti-events dlq`` on dead letters anyone could have crafted: headers of any type and size,
ids and types full of terminal escape sequences. Every action runs, prints nothing raw, and
leaves every message where it was."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from processor.broker import topology
from processor.cli import main
from tests.conftest import Broker
from tests.integration.amqp import channel, depth, drain
from tests.integration.test_parking import HANDLER, LOT, WORK, prepare

pytestmark = pytest.mark.integration

# Raw bytes no terminal should receive from a message: C0 but line feed, DEL, and C1 (as the
# UTF-8 of U+0080..U+009F, or alone), e.g. ESC [ 2 J clears the screen.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
ESC = "\x1b"
PROGRESS = re.compile(r"\r\[[#.]{10}\] \d+/\d+")  # replay's own progress bar, on stderr


class NotUtf8(str):
    """A header value the client library writes as a long string of these exact bytes."""

    raw: bytes

    def __new__(cls, raw: bytes) -> NotUtf8:
        made = super().__new__(cls, "")
        made.raw = raw
        return made

    def encode(self, *_: Any, **__: Any) -> bytes:
        return self.raw


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


CRAFTED: list[tuple[str, dict[str, Any], bytes]] = [
    (f"evil-{ESC}]0;owned{chr(7)}", {
        "x-death": 5, "x-zenoti-attempt": "abc", "event_type": f"Guest{ESC}[31m.Evil{chr(7)}",
        "x-zenoti-reason": f"{ESC}[2J{ESC}[H", "x-zenoti-dead-at": 12345,
        "received_at": {"nested": ["junk"]}, "tenant": [[["a"]]],
    }, b"not json " + ESC.encode() + b"[5m\r\x00\x9b"),
    ("odd-types", {
        "x-death": "junk", "x-zenoti-attempt": 2**62, "x-zenoti-error": "e" * 50_000,
        "x-zenoti-dead-at": "9999-12-31T23:59:59-23:59", "received_at": NotUtf8(b"\xff\xfe\x1b"),
        "event_type": NotUtf8(b"Guest.\xc3(\x1b[31m"), "x-zenoti-replay-count": True,
        "deep": nested(40), "\x1b[31mname": "del\x7f and c1 \u009b and bidi \u202e",
        "x-zenoti-routing-key": "r" * 300,
    }, b"[" * 50_000 + b"]" * 50_000),
    ("lists", {
        "x-death": [1, "a", None,
                    {"queue": 7, "reason": NotUtf8(b"\x1b[1m\xff"), "time": "yesterday"}],
        "x-zenoti-attempt": -3, "x-zenoti-dead-at": "0001-01-01T00:00:00+23:59",
        "x-zenoti-error": bytearray(b"\x1b[31m" * 100),
    }, json.dumps({"event_type": f"Guest.{ESC}[1mBold", "data": "\u009b\x7f"}).encode()),
]


async def publish(url: str, exchange: str, key: str) -> None:
    async with channel(url) as ch:
        target = await ch.get_exchange(exchange)
        for message_id, headers, body in CRAFTED:
            await target.publish(aio_pika.Message(
                body, message_id=message_id, headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=key)


async def parked(url: str, queue: str) -> list[AbstractIncomingMessage]:
    return await drain(url, queue, len(CRAFTED), timeout=5)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The exit code, what was printed (stdout), and the log lines (stderr)."""
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("logging_restored")
def test_the_dlq_command_survives_crafted_dead_letters_and_prints_nothing_raw(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(prepare(broker.url))
    asyncio.run(publish(broker.url, topology.DEAD, WORK))  # into the handler's lot
    asyncio.run(publish(broker.url, topology.EVENTS, "nobody.takes.this"))  # unrouted
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", broker.url)
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")
    printed, outputs = [], []
    for lot in (HANDLER, "unrouted"):
        for argv in (["dlq", "list", lot], ["dlq", "list", lot, "--json"],
                     ["dlq", "replay", lot, "--dry-run"],
                     *[["dlq", "show", lot, message_id] for message_id, _, _ in CRAFTED]):
            code, output, logged = run(argv, capsys)
            assert code == 0, (argv, output, logged)
            printed.append(output + logged)
            outputs.append(output)
        assert asyncio.run(depth(broker.url, LOT if lot == HANDLER else topology.UNROUTED)) == 3
    everything = PROGRESS.sub("", "".join(printed))
    raw = RAW_CONTROL.search(everything)
    assert raw is None, everything[max(raw.start() - 300, 0):raw.end() + 100]
    assert max(len(line) for line in everything.splitlines()) < 101_000  # the body's bound
    assert "\\x1b[31m.Evil\\x07" in everything and "\\x1b[2J" in everything  # escaped, shown
    assert "more characters" in everything  # the 50,000-character error, cut
    listing = json.loads(outputs[1])  # list --json of the handler's lot
    assert [m["attempts"] for m in listing] == [1, 2**62, 1]
    assert all(len(m["error"]) < 2100 for m in listing)
    # Still there, in order, as they came: no action moved, dropped or altered a message
    # (bytes that are not UTF-8 come back as a byte array: the client cannot write them back
    # as a string).
    for queue in (LOT, topology.UNROUTED):
        left = asyncio.run(parked(broker.url, queue))
        assert [(m.message_id, m.body) for m in left] == [(i, b) for i, _, b in CRAFTED]
        first, second, _ = (m.headers for m in left)
        assert (first["x-death"], first["x-zenoti-attempt"]) == (5, "abc")
        assert first["tenant"] == [[["a"]]] and second["deep"] == nested(40)
        assert second["received_at"] == bytearray(b"\xff\xfe\x1b")
        assert second["x-zenoti-error"] == "e" * 50_000

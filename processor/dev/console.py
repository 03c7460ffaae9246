"""What ``zenoti-events up`` shows: each enriched event, and one summary line.

    guest.membership.frozen      tenant=default guest='Ravi Silva' id=default:69a5...
    accepted 57  enriched 41  parked 3  waiting for the API budget 13

The events are the lines of the ``tap`` child, read from its stdout. The summary line is
redrawn in place on a terminal; elsewhere (a pipe, a file) it is printed when it changed, at
most every ``PRINT_EVERY`` seconds, and at the end. ``Scoreboard`` keeps its figures, polled
once a second in a thread of its own, every read bounded by a timeout:

- accepted: deliveries the ingress answered 202 (its ``/metrics``);
- enriched: messages the worker handled to the end (its ``/metrics``, outcome ``ok``);
- parked: messages in ``zenoti.unrouted`` and in the handlers' dead-letter queues (AMQP);
- waiting: messages in the handlers' delay queues (AMQP): for the API budget, or, once the
  worker has retried a failure, for a retry as well (the line says which).

A figure that cannot be read shows as ``?``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TextIO

import aio_pika
from prometheus_client.parser import text_string_to_metric_families

from processor.broker import topology
from processor.broker.connect import connect
from processor.dev.launcher import fetch

PRINT_EVERY = 10.0
_MESSAGES = "zenoti_events_messages_total"


@dataclass(frozen=True)
class Counts:
    accepted: int | None = None
    enriched: int | None = None
    parked: int | None = None
    waiting: int | None = None
    retried: bool = False  # the worker retried a failure: a wait may be for a retry

    @property
    def known(self) -> bool:
        return any(n is not None for n in (self.accepted, self.enriched, self.parked,
                                            self.waiting))

    def line(self) -> str:
        shown = ["?" if n is None else str(n)
                 for n in (self.accepted, self.enriched, self.parked, self.waiting)]
        waiting = ("waiting {} (API budget or retry)" if self.retried
                   else "waiting for the API budget {}").format(shown[3])
        return f"accepted {shown[0]}  enriched {shown[1]}  parked {shown[2]}  {waiting}"


class Scoreboard:
    """The summary's figures (see the module's docstring), as of the last poll: ``latest``."""

    def __init__(self, amqp_url: str, ingress_metrics: str, worker_metrics: str,
                 tiers: Sequence[float], period: float = 1.0) -> None:
        self.latest = Counts()
        self._amqp_url, self._tiers, self._period = amqp_url, tiers, period
        self._metrics = (ingress_metrics, worker_metrics)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="up-scoreboard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop polling (bounded: each read has a timeout, and the thread is a daemon)."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(self._period + 10)

    def _serve(self) -> None:
        asyncio.run(self._poll())

    async def _poll(self) -> None:
        connection: aio_pika.abc.AbstractConnection | None = None
        try:
            while not self._closed.is_set():
                ingress, worker = (_samples(scrape(url)) for url in self._metrics)
                handlers = {s.labels["handler"] for s in worker if s.name == _MESSAGES}
                parked, waiting, connection = await self._depths(connection, handlers)
                self.latest = Counts(
                    accepted=_sum(ingress, "zenoti_events_deliveries_total", status="202"),
                    enriched=_sum(worker, _MESSAGES, outcome="ok"),
                    parked=parked, waiting=waiting,
                    retried=bool(_sum(worker, _MESSAGES, outcome="retry")))
                await asyncio.sleep(self._period)
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 5)

    async def _depths(self, connection: aio_pika.abc.AbstractConnection | None,
                      handlers: set[str],
                      ) -> tuple[int | None, int | None, aio_pika.abc.AbstractConnection | None]:
        """Messages parked and waiting, on a connection kept between polls (None: unknown,
        the handlers too: the worker did not answer)."""
        if not handlers:
            return None, None, connection
        parked = [topology.UNROUTED, *(topology.dead_queue_name(h) for h in handlers)]
        delays = [topology.delay_queue_name(h, t) for h in handlers for t in self._tiers]
        try:
            async with asyncio.timeout(5):
                if connection is None or connection.is_closed:
                    connection = await connect(self._amqp_url, attempt_timeout=5,
                                               name="up console")
                channel = await connection.channel()
                try:
                    return (await _depth(channel, parked), await _depth(channel, delays),
                            connection)
                finally:
                    await channel.close()
        except Exception:  # the broker's, the network's: unknown until the next poll
            return None, None, connection


async def _depth(channel: aio_pika.abc.AbstractChannel, names: Iterable[str]) -> int:
    total = 0
    for name in names:
        declared = await channel.declare_queue(name, passive=True)
        total += declared.declaration_result.message_count or 0
    return total


def scrape(url: str, timeout: float = 1.0) -> str:
    """The text at ``url`` ("" when it does not answer 200 within ``timeout``)."""
    return fetch(url, timeout) or ""


def _samples(text: str) -> list[Sample]:
    try:
        return [Sample(s.name, s.labels, s.value)
                for family in text_string_to_metric_families(text) for s in family.samples]
    except ValueError:  # cut short
        return []


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def _sum(samples: list[Sample], name: str, **labels: str) -> int | None:
    chosen = [s.value for s in samples
              if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return int(sum(chosen)) if samples else None


class _Output:
    """``out``, written until it goes away (``up | head``, a closed terminal): from then on
    writes are dropped, so stopping the stack never ends in a BrokenPipeError traceback."""

    def __init__(self, out: TextIO) -> None:
        self._out: TextIO | None = out

    def write(self, text: str) -> int:
        if self._out is not None:
            try:
                self._out.write(text)
            except (OSError, ValueError):  # a broken pipe, a closed file
                self._out = None
        return len(text)

    def flush(self) -> None:
        if self._out is not None:
            try:
                self._out.flush()
            except (OSError, ValueError):
                self._out = None


# C0 and C1 control characters but tab: a line from the broker must not drive the terminal.
_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)], "?")


def printable(line: str) -> str:
    """``line`` with control characters (escape sequences included) shown as ``?``."""
    return line.translate(_CONTROLS)


class Console:
    """Enriched events and the summary line on ``out``; see the module's docstring."""

    def __init__(self, out: TextIO, tty: bool | None = None) -> None:
        self._tty = out.isatty() if tty is None else tty
        self._out = _Output(out)
        self._board: Scoreboard | None = None
        self._events: queue.Queue[str] = queue.Queue()
        self._shown, self._printed_at, self._drawn = "", 0.0, False

    def show(self, board: Scoreboard) -> None:
        """Show ``board``'s figures from now on."""
        self._board = board

    def follow(self, stream: IO[bytes]) -> threading.Thread:
        """Show the lines of ``stream`` (the tap's stdout) as events; read by the thread
        returned until the stream ends."""
        def read() -> None:
            for raw in stream:
                self._events.put(printable(raw.decode(errors="replace").rstrip("\n")))

        reader = threading.Thread(target=read, name="up-events", daemon=True)
        reader.start()
        return reader

    def say(self, line: str, file: TextIO | None = None) -> None:
        """A line of ``up`` itself, above the summary."""
        self._clear()
        print(line, file=self._out if file is None else _Output(file), flush=True)

    def refresh(self) -> None:
        """Show the events that came, then the summary line."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self._clear()
            print(event, file=self._out)
        self._summary(final=False)

    def close(self) -> None:
        """The last events and the summary line, left on screen."""
        self.refresh()
        self._summary(final=True)
        if self._drawn:
            print(file=self._out, flush=True)
            self._drawn = False

    def _summary(self, final: bool) -> None:
        counts = self._board.latest if self._board is not None else Counts()
        if not counts.known:
            return
        line = counts.line()
        if self._tty:
            if not self._drawn or line != self._shown:
                width = shutil.get_terminal_size().columns - 1
                self._out.write(f"\r\x1b[K{line[:width]}")
                self._shown, self._drawn = line, True
        elif line != self._shown and (final or time.monotonic() - self._printed_at
                                      >= PRINT_EVERY):
            print(line, file=self._out)
            self._shown, self._printed_at = line, time.monotonic()
        self._out.flush()

    def _clear(self) -> None:
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._drawn = False

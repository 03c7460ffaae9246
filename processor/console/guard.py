"""What keeps the console's work on the broker bounded, and its failures answered.

- ``READS`` reads at a time, console-wide: a lot's browse (its page, a message, ``/types``),
  an overview, an archive find and a confirmation's count each hold a slot; a request that has none
  within ``SLOT_WAIT`` seconds answers 503 with ``Retry-After`` (never queued work).
- One pass per lot at a time (``processor.ops.parking`` requires it): every pass the console
  makes on a lot (a view's browse, the overview's reason count, a replay, a purge) holds the
  lot's ``asyncio.Lock``. A view waits ``VIEW_WAIT`` seconds for it, then answers 503 busy; an
  action waits ``ACT_WAIT``, then answers 409 busy.
- The broker refusing or down: 503 "broker unavailable (<error type>)", never a traceback.
- A source's failure is logged once per cause (``console.source_failed``, when a source starts
  failing or fails differently) and its recovery once (``console.source_recovered``): a page
  reloaded during an outage adds no line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aio_pika
from aiohttp import web

from processor import logs
from processor.errors import BrokerUnavailable

READS = 4
SLOT_WAIT = 2.0
VIEW_WAIT = 5.0
ACT_WAIT = 5.0
RETRY_AFTER = "5"  # seconds, in the 503s' Retry-After


class Guard:
    """The console's read slots and its lots' locks (one per lot name, made when first
    asked for)."""

    def __init__(self, reads: int = READS) -> None:
        self.reads = asyncio.Semaphore(reads)
        self._locks: dict[str, asyncio.Lock] = {}
        self._failing: dict[str, str] = {}  # source -> the error type it last failed with

    def lock(self, lot: str) -> asyncio.Lock:
        """The lock every pass on ``lot`` holds."""
        return self._locks.setdefault(lot, asyncio.Lock())

    def failed(self, source: str, exc: BaseException, **where: str) -> None:
        """``source`` failed with ``exc``: logged when it was answering, or failed otherwise."""
        error = type(exc).__name__
        if self._failing.get(source) != error:
            self._failing[source] = error
            logs.get_logger().warning("console.source_failed", source=source, error=error,
                                      **where)

    def answered(self, source: str) -> None:
        """``source`` answered: its recovery logged once when it was failing."""
        if self._failing.pop(source, None) is not None:
            logs.get_logger().info("console.source_recovered", source=source)


GUARD = web.AppKey("guard", Guard)


def install(app: web.Application) -> Guard:
    """The application's guard, made on the first call (pages install it as they need)."""
    if GUARD not in app:
        app[GUARD] = Guard()
    return app[GUARD]


def unavailable(text: str) -> web.HTTPServiceUnavailable:
    """A 503 saying ``text``, with ``Retry-After``."""
    return web.HTTPServiceUnavailable(text=text, headers={"Retry-After": RETRY_AFTER})


async def acquire(lock: asyncio.Lock, wait: float) -> bool:
    """``lock`` taken within ``wait`` seconds (``True``), else not taken (``False``)."""
    try:
        async with asyncio.timeout(wait):
            await lock.acquire()
    except TimeoutError:
        return False
    return True


@contextlib.asynccontextmanager
async def reading(request: web.Request) -> AsyncIterator[None]:
    """Hold one of the console's read slots; 503 busy when none frees within
    ``SLOT_WAIT``."""
    slots = request.app[GUARD].reads
    try:
        async with asyncio.timeout(SLOT_WAIT):
            await slots.acquire()
    except TimeoutError:
        raise unavailable("the console is busy with other reads: retry in a few seconds") \
            from None
    try:
        yield
    finally:
        slots.release()


@contextlib.asynccontextmanager
async def viewing(request: web.Request, lot: str) -> AsyncIterator[None]:
    """Hold a read slot and ``lot``'s lock for a view; 503 busy when either is not free in
    time."""
    async with reading(request):
        lock = request.app[GUARD].lock(lot)
        if not await acquire(lock, VIEW_WAIT):
            raise unavailable(f"{lot} is busy (a replay, purge or count is running): "
                              "retry in a few seconds")
        try:
            yield
        finally:
            lock.release()


@contextlib.asynccontextmanager
async def broker_answers(request: web.Request, source: str) -> AsyncIterator[None]:
    """Turn the broker's failures inside into a 503 naming it (and a missing queue into a
    503 saying so)."""
    try:
        yield
    except aio_pika.exceptions.ChannelNotFoundEntity:
        raise unavailable("no such queue on the broker (is the topology declared?)") from None
    except (aio_pika.exceptions.AMQPError, BrokerUnavailable, OSError, TimeoutError) as exc:
        request.app[GUARD].failed(source, exc)
        raise unavailable(f"broker unavailable ({type(exc).__name__})") from None
    request.app[GUARD].answered(source)

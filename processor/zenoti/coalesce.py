"""Concurrent identical API requests in one process share one call ("single flight").

A request joins a call already in flight for the same key only if that call started late
enough for it (``not_before``): an event received after a call began needs a newer answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs ``make()`` once per key at a time; joiners await the same result or error."""

    def __init__(self, on_join: Callable[[str], None] = lambda _key: None) -> None:
        self._flights: dict[str, tuple[float, asyncio.Future[T]]] = {}
        self._on_join = on_join

    async def run(self, key: str, not_before: float | None, make: Callable[[], Awaitable[T]],
                  label: str = "") -> T:
        """``make()``'s result, or that of the same key's call in flight if it may serve;
        ``label`` is passed to ``on_join`` when joining (a metric label, say)."""
        flight = self._flights.get(key)
        if flight is not None and (not_before is None or flight[0] >= not_before):
            self._on_join(label)
            return await asyncio.shield(flight[1])
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        mine = (time.time(), future)
        self._flights[key] = mine
        try:
            result = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody joined
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._flights.get(key) is mine:
                del self._flights[key]

"""A lot's replay or purge, run in the background: one at a time console-wide (a second is
refused with 409 until it ends), replays at ``RATE`` messages a second, the progress on the
lot's page.

The job holds the lot's lock (``guard``) from the request that starts it to its end, so no
other pass of the console runs on that lot meanwhile (its page shows the progress instead of
the list). It writes a ``console.action`` line as it starts (the action, the filter, the
count the confirmation showed as ``confirmed_expected``) and one in ``finally`` as it ends
(``replayed``/``purged``, with the count taken so far and the error, if any: also when it
failed or was stopped by a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiohttp import web

from processor.console import guard
from processor.console.common import Actor, describe
from processor.console.pages import esc
from processor.ops import dlq
from processor.ops.parking import Filter, ParkingLot
from processor.settings import Settings

RATE = 10.0  # messages a second a lot replay sends
_ENDED = {"replay": "replayed", "purge": "purged"}


@dataclass
class LotJob:
    """One replay or purge of ``lot``'s messages that ``where`` selects, and its progress."""

    lot: str
    action: str  # "replay" | "purge"
    where: Filter
    actor: Actor
    expected: int | None
    read: int = 0
    total: int = 0
    taken: int = 0
    error: str = ""
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def status(self) -> str:
        """The job as a paragraph (id ``lot-status``)."""
        state = "running" if self.running else (
            f"failed ({self.error})" if self.error else "finished")
        return (f"<p id='lot-status'>{esc(self.action.capitalize())} of "
                f"{esc(describe(self.where))} {esc(state)}: read {self.read} of {self.total}, "
                f"{esc(_ENDED[self.action])} {self.taken}.</p>")


class LotJobs:
    """The console's lot job: the one running or the last one."""

    def __init__(self) -> None:
        self.last: LotJob | None = None

    def of(self, lot: str) -> LotJob | None:
        """The running or last job, if it is ``lot``'s."""
        return self.last if self.last is not None and self.last.lot == lot else None

    async def start(self, settings: Settings, lock: asyncio.Lock, job: LotJob) -> None:
        """Run ``job`` in the background holding ``lock``; 409 if a job is running or the
        lot stays busy for ``guard.ACT_WAIT`` seconds."""
        if self.last is not None and self.last.running:
            raise web.HTTPConflict(text="a replay or purge is running: wait for it to finish")
        if not await guard.acquire(lock, guard.ACT_WAIT):
            raise web.HTTPConflict(text=f"{job.lot} is busy (a view or count is reading it): "
                                   "try again in a moment")
        self.last = job
        job.task = asyncio.create_task(_run(settings, lock, job))

    async def close(self) -> None:
        """Stop a job still running (its end line says so)."""
        if self.last is not None and self.last.task is not None:
            self.last.task.cancel()
            with contextlib.suppress(BaseException):
                await self.last.task


JOBS = web.AppKey("lot_jobs", LotJobs)


def install(app: web.Application) -> None:
    app[JOBS] = LotJobs()

    async def close(app: web.Application) -> None:
        await app[JOBS].close()

    app.on_cleanup.append(close)


async def _run(settings: Settings, lock: asyncio.Lock, job: LotJob) -> None:
    """Run ``job`` (``lock`` already held, released at the end), logging its start and end."""
    job.actor.log(job.action, job.lot, None, filter=describe(job.where),
                  confirmed_expected=job.expected, phase="start")
    parking: ParkingLot | None = None

    def progress(read: int, total: int) -> None:
        job.read, job.total = read, total
        job.taken = parking.taken if parking is not None else 0

    try:
        async with dlq.open_lot(settings, job.lot) as parking:
            if job.action == "replay":
                await parking.replay(job.where, rate=RATE, progress=progress)
            else:
                await parking.purge(job.where, progress=progress)
    except Exception as exc:  # shown on the lot's page and logged; ``taken`` says how far
        job.error = type(exc).__name__
    except asyncio.CancelledError:
        job.error = "stopped"
        raise
    finally:
        lock.release()
        job.taken = parking.taken if parking is not None else 0
        job.actor.log(_ENDED[job.action], job.lot, job.taken, filter=describe(job.where),
                      confirmed_expected=job.expected, error=job.error or None, phase="end")

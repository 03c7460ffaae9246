"""Our worker exactly as ``zenoti-events worker`` runs it, with ``CachedFreeze`` as its handler.

Settings come from the environment (``ZENOTI_EVENTS_*``) as in production. The one change is
the handler given to ``build_worker``: ``bench.apps.handler:CachedFreeze``, loaded and checked
as an installed entry point is, instead of the installed ones. ``--loop`` picks the event
loop. With ``BENCH_TASKS_FILE`` set, the number of asyncio tasks is appended to that file
every half second (the soak scenario watches it for leaks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from importlib.metadata import EntryPoint

from bench.apps import loop
from processor import cli, logs, wiring
from processor.handler import ENTRY_POINT_GROUP, Handler
from processor.settings import Settings
from processor.worker import plugins

_POINT = EntryPoint(name="membership-freeze", value="bench.apps.handler:CachedFreeze",
                    group=ENTRY_POINT_GROUP)


def _handlers() -> list[Handler]:
    return [loaded.cls() for loaded in plugins.load([_POINT])]


async def _count_tasks(path: str) -> None:
    with open(path, "a") as out:
        while True:
            out.write(f"{time.monotonic():.3f} {len(asyncio.all_tasks()) - 1}\n")
            out.flush()
            await asyncio.sleep(0.5)


async def _run(settings: Settings, stop: asyncio.Event) -> None:
    path = os.environ.get("BENCH_TASKS_FILE")
    watcher = asyncio.create_task(_count_tasks(path)) if path else None
    try:
        await wiring.build_worker(settings, _handlers()).serve(stop)
    finally:
        if watcher is not None:
            watcher.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    loop.add_option(parser)
    loop.install(parser.parse_args().loop, ours=True)
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return cli.run_until_signalled(lambda stop: _run(settings, stop))


if __name__ == "__main__":
    raise SystemExit(main())

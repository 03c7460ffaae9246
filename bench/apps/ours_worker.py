"""Our worker exactly as ``zenoti-events worker`` runs it, with ``CachedFreeze`` as its handler.

Settings come from the environment (``ZENOTI_EVENTS_*``) as in production. The one change is
plugin discovery: it finds ``bench.apps.handler:CachedFreeze`` instead of the installed entry
points, and checks it the same way. ``--uvloop`` runs the event loop on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from importlib.metadata import EntryPoint

from processor import cli, logs, plugins, services
from processor.handler import ENTRY_POINT_GROUP
from processor.settings import Settings

_POINT = EntryPoint(name="membership-freeze", value="bench.apps.handler:CachedFreeze",
                    group=ENTRY_POINT_GROUP)


def _discover(enabled: Sequence[str] | None = None) -> list[plugins.LoadedHandler]:
    return plugins.load([_POINT], enabled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uvloop", action="store_true")
    if parser.parse_args().uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    plugins.discover = _discover  # type: ignore[assignment]  # the bench handler instead
    return cli.run_until_signalled(lambda stop: services.run_worker(settings, stop))


if __name__ == "__main__":
    raise SystemExit(main())

"""The event loop of a measured process, ``--loop uvloop|asyncio``: the same for every variant.

Our processes run on uvloop where it is installed (``processor.cli.run_loop``); a baseline on
asyncio beside them would measure the loop, not the code. ``install`` sets the choice for
``asyncio.run`` (the baselines) and for ``run_loop`` (ours).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any

CHOICES = ("uvloop", "asyncio")


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loop", choices=CHOICES, default="asyncio",
                        help="the event loop (default: asyncio)")


def install(name: str, *, ours: bool = False) -> None:
    """Run on ``name``; for ours, replace ``processor.cli.run_loop`` accordingly."""
    if name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if ours:
        from processor import cli

        cli.run_loop = _run  # ours would pick uvloop by itself where installed


def _run(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(main)  # on the policy's loop: uvloop or asyncio, as installed above

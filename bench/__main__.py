"""``python -m bench [all|ingress|worker|e2e|soak|processes|spool|profile] [--quick] [--runs N]``.

Runs the chosen scenarios in the benchmark vhost, prints a table per scenario and writes
``bench/results/<scenario>.json`` and ``.png``. Every scenario is bounded in time; ``all``
takes about 20 minutes here, ``--quick`` about 4 (a smoke run, one round, short windows).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import broker, machine, report
from bench.runner import Options

SCENARIOS = ("ingress", "worker", "e2e", "soak", "processes", "spool")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.ours_from:
        os.environ["BENCH_OURS_FROM"] = str(Path(args.ours_from).resolve())
    options = Options(runs=1 if args.quick and args.runs is None else args.runs or 3,
                      quick=args.quick, noise=args.noise, loop=args.loop)
    if args.scenario == "profile":
        from bench import profile

        return profile.main(options)
    broker.ensure_vhost()
    asyncio.run(broker.delete_all())
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    started = time.monotonic()
    try:
        for name in chosen:
            _one(name, options)
        picture = report.overview()
        if picture is not None:
            print(f"wrote {picture.relative_to(report.RESULTS.parent.parent)}")
    finally:
        asyncio.run(broker.delete_all())
    print(f"\ndone in {time.monotonic() - started:.0f} s", flush=True)
    return 0


def _one(name: str, options: Options) -> None:
    scenario = importlib.import_module(f"bench.scenarios.{name}")
    began = time.monotonic()
    measured = scenario.run(options)
    measured.notes["seconds"] = round(time.monotonic() - began)
    print(report.table(measured), flush=True)
    meta = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "quick": options.quick,
            "runs": options.runs, "loop": options.loop, "machine": machine.describe(),
            "ours_from": "other checkout" if os.environ.get("BENCH_OURS_FROM") else "this one",
            "discarded_runs": list(options.discarded)}
    for path in report.write(measured, meta):
        print(f"wrote {path.relative_to(report.RESULTS.parent.parent)}")
    options.discarded.clear()


def _default_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", nargs="?", default="all", choices=("all", *SCENARIOS,
                                                                       "profile"))
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    parser.add_argument("--runs", type=int, default=None, help="rounds per scenario (3)")
    parser.add_argument("--noise", type=float, default=0.6,
                        help="cores busy with other work that make a run be repeated")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=_default_loop(),
                        help="event loop of every measured process, ours and the baselines "
                             "(default: uvloop where installed, as our processes run)")
    parser.add_argument("--ours-from", metavar="DIR",
                        help="run our ingress and worker from another checkout (before/after)")
    return parser


if __name__ == "__main__":
    sys.exit(main())

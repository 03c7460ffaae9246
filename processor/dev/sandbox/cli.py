"""``zenoti-events sandbox`` and ``zenoti-events simulate``: options map one-to-one onto
``SandboxConfig`` and ``SimulatorConfig`` (but ``--zenoti-retries``, a preset, and its
``--time-factor``); ``--help`` shows their defaults."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
from typing import Any

from processor.dev.sandbox.config import SandboxConfig
from processor.dev.sandbox.server import run_sandbox
from processor.dev.simulator import SimulatorConfig, run_simulator
from processor.errors import ConfigError
from processor.settings import Settings


def add_sandbox_parser(sub: Any) -> None:
    parser = sub.add_parser("sandbox", help="serve a stand-in Zenoti API (data, limits, faults)",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = SandboxConfig()
    parser.add_argument("--host", default=d.host)
    parser.add_argument("--port", type=int, default=d.port)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--guests", type=int, default=d.guests)
    parser.add_argument("--centers", type=int, default=d.centers)
    parser.add_argument("--calls-per-window", type=int, default=d.calls_per_window)
    parser.add_argument("--window-seconds", type=float, default=d.window_seconds)
    parser.add_argument("--latency-ms", type=float, default=d.latency_ms)
    parser.add_argument("--error-rate", type=float, default=d.error_rate)
    parser.add_argument("--throttle-rate", type=float, default=d.throttle_rate)
    parser.add_argument("--timeout-rate", type=float, default=d.timeout_rate)
    parser.add_argument("--hang-seconds", type=float, default=d.hang_seconds)
    parser.add_argument("--throttle-retry-after", type=float, default=d.throttle_retry_after)
    parser.add_argument("--api-key", action="append", default=[], dest="api_keys",
                        help="accepted key (repeatable; none: any non-empty key)")
    parser.add_argument("--list-key", action="append", default=[], dest="list_keys",
                        type=_pair, metavar="LIST=KEY",
                        help="wrapper key of a list Zenoti does not document, e.g. "
                             "center_members=center_members (repeatable)")
    parser.add_argument("--status-names", action="store_true",
                        help="statuses in center-wide lists as names, not numbers")
    parser.set_defaults(command=_sandbox)


def add_simulate_parser(sub: Any) -> None:
    parser = sub.add_parser("simulate", help="post signed Zenoti deliveries to an ingress",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = SimulatorConfig(url="http://127.0.0.1:8080/webhooks/zenoti")
    parser.add_argument("--url", default=d.url)
    parser.add_argument("--secret", default=None, help="webhook secret (none: unsigned)")
    parser.add_argument("--count", type=int, default=d.count)
    parser.add_argument("--rate", type=float, default=d.rate, help="per second; <= 0: no pacing")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--guests", type=int, default=d.guests)
    parser.add_argument("--centers", type=int, default=d.centers)
    parser.add_argument("--unknown-ratio", type=float, default=d.unknown_ratio)
    parser.add_argument("--concurrency", type=int, default=d.concurrency)
    parser.add_argument("--max-resends", type=int, default=d.max_resends)
    parser.add_argument("--day", action="store_true",
                        help="the realistic day: most guests once, correlated bursts")
    parser.add_argument("--mix", default=d.mix,
                        help='with --day, shares of kinds: "freeze=0.4,guestpass=0.3,package=0.3"')
    parser.add_argument("--zenoti-retries", action="store_true",
                        help="Zenoti's own retry policy (replaces --max-resends): 10 s timeout, "
                             "5 attempts 30 s..10 min apart, switched off after 20 failures")
    parser.add_argument("--time-factor", type=float, default=1.0,
                        help="with --zenoti-retries, divides its durations (10: 10x faster)")
    parser.set_defaults(command=_simulate)


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    """The config ``simulate``'s parsed ``args`` describe; ``ConfigError`` for a time factor
    without ``--zenoti-retries`` or out of range (the rest is checked when the run starts)."""
    fields = _fields(args, SimulatorConfig)
    if args.zenoti_retries:
        del fields["max_resends"]  # the policy's, not the option's default
        return SimulatorConfig.zenoti(time_factor=args.time_factor, **fields)
    if args.time_factor != 1.0:
        raise ConfigError("--time-factor needs --zenoti-retries")
    return SimulatorConfig(**fields)


def _pair(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected LIST=KEY, got {text!r}")
    return name, value


def _sandbox(args: argparse.Namespace, settings: Settings) -> int:
    config = SandboxConfig(**{**_fields(args, SandboxConfig), "list_keys": dict(args.list_keys)})
    config.check()

    async def serve() -> None:
        task = asyncio.create_task(run_sandbox(config))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(serve())
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(run_simulator(simulator_config(args)))
    print(json.dumps(report.as_json()), file=sys.stdout, flush=True)
    return 0 if report.failed == 0 and report.not_sent == 0 else 1


def _fields(
    args: argparse.Namespace, config: type[SandboxConfig] | type[SimulatorConfig]
) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(config)}
    return {k: v for k, v in vars(args).items() if k in names}

"""The ``zenoti-events`` command. Settings come from the environment (``ZENOTI_EVENTS_*``),
read once here and passed down; options only select what to run."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiormq

from processor import logs, wiring
from processor.console import cli as console_cli
from processor.contract import asyncapi, json_schemas
from processor.dev import scaffold
from processor.dev import stack as devstack
from processor.dev.sandbox.cli import add_sandbox_parser, add_simulate_parser
from processor.errors import ConfigError
from processor.ops import archive_cli, dlq, policies, tap
from processor.settings import Settings
from processor.worker import plugins

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"zenoti-events: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    command: Command = args.command
    try:
        return command(args, settings)
    except ConfigError as exc:
        # One structured line, whenever it is found (at start-up, or a topology mismatch met
        # on a reconnect): retrying cannot help, so the process stops and says why.
        logs.get_logger().error("process.config_error", error=str(exc), kind=type(exc).__name__)
        return 2
    except (OSError, aiormq.exceptions.AMQPConnectionError) as exc:
        # A port taken, a broker that cannot be reached: one line an operator can read and a
        # log shipper can parse, not a traceback across lines.
        logs.get_logger().error("process.failed", error=str(exc) or repr(exc),
                                kind=type(exc).__name__)
        return 1


def run_until_signalled(make: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Run ``make(stop)``; SIGTERM and SIGINT set ``stop`` for a graceful shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            await make(stop)
        finally:  # uvloop leaves its handlers in place otherwise: Ctrl-C would stop nothing
            for sig in signals:
                loop.remove_signal_handler(sig)

    run_loop(runner())
    return 0


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (it cuts the HTTP server's own cost by
    about 15 %, docs/ingress-framework.md), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _ingress(args: argparse.Namespace, settings: Settings) -> int:
    return run_until_signalled(lambda stop: wiring.run_ingress(settings, stop))


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    return run_until_signalled(lambda stop: wiring.run_worker(settings, stop, args.handler))


def _topology(args: argparse.Namespace, settings: Settings) -> int:
    # A MANAGEMENT_URL that would send credentials in clear or to another host stops here
    # (ConfigError, exit 2), before anything is declared.
    policies.Management.of(settings)
    try:
        bindings = asyncio.run(wiring.declare_topology(settings))
    except policies.PolicyRefused as exc:
        # Logged (topology.policies_refused, with the rabbitmqctl commands): an init Job must
        # not pass without its policies. An API that cannot be reached is only a warning.
        return exc.exit_code
    for binding in bindings:
        print(f"zenoti.h.{binding.handler}: {', '.join(binding.routing_keys)}")
    return 0


def _handlers(args: argparse.Namespace, settings: Settings) -> int:
    for handler in plugins.discover():
        types = settings.handler_event_types.get(handler.name, handler.cls.event_types)
        print(f"{handler.name}\t{', '.join(types)}\t{handler.source}")
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    """JSON Schema of every installed handler's input and outputs: one JSON object by ``$id``
    on stdout, or a file each in ``--out``."""
    handlers = [handler.cls for handler in plugins.discover()]
    if args.built_in:
        handlers = json_schemas.built_in(handlers)
    if args.out is None:
        found = json_schemas.generate(handlers).values()
        print(json.dumps({schema["$id"]: schema for schema in found}, indent=2))
        return 0
    for path in json_schemas.write(args.out, handlers):
        print(path)
    return 0


def _asyncapi(args: argparse.Namespace, settings: Settings) -> int:
    """The AsyncAPI 3.0.0 document of this deployment, on stdout or into ``--out``."""
    handlers = [handler.cls for handler in plugins.discover()]
    document = asyncapi.document(settings, handlers, version("zenoti-events"))
    text = json.dumps(document, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _add_contract_parsers(sub: Any) -> None:
    schemas = sub.add_parser("schemas", help="JSON Schema of the handlers' inputs and outputs")
    schemas.add_argument("--out", type=Path, metavar="DIR",
                         help="write one file per schema here (default: one JSON on stdout)")
    schemas.add_argument("--built-in", action="store_true",
                         help="only the handlers zenoti-events ships (schemas/json/ holds theirs)")
    schemas.set_defaults(command=_schemas)
    spec = sub.add_parser("asyncapi", help="AsyncAPI 3.0.0 document of this deployment")
    spec.add_argument("--out", type=Path, metavar="FILE", help="write it here (default: stdout)")
    spec.set_defaults(command=_asyncapi)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zenoti-events", description="Zenoti webhooks -> RabbitMQ -> enriched events."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("ingress", help="serve webhook deliveries").set_defaults(command=_ingress)
    worker = sub.add_parser("worker", help="consume and enrich events")
    worker.add_argument("--handler", action="append", default=[], metavar="NAME",
                        help="only this handler (repeatable); default: every installed one")
    worker.set_defaults(command=_worker)
    sub.add_parser("topology", help="declare exchanges and queues").set_defaults(
        command=_topology)
    sub.add_parser("handlers", help="list installed handlers").set_defaults(command=_handlers)
    add_sandbox_parser(sub)
    add_simulate_parser(sub)
    tap.add_parser(sub)
    dlq.add_parser(sub)
    console_cli.add_parser(sub)
    archive_cli.add_parsers(sub)
    devstack.add_parser(sub)
    scaffold.add_parser(sub)
    _add_contract_parsers(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())

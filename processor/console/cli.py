"""``zenoti-events console [--port PORT]``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from aiohttp import web

from processor import logs
from processor.console.app import make_app
from processor.console.auth import check_tokens
from processor.errors import ConfigError
from processor.settings import Settings


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("console", help="serve the operator's web console")
    parser.add_argument("--port", type=int, default=None, help="default: CONSOLE_PORT (8091)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; ``ConfigError`` (exit 2) naming every problem of the
    tokens at once (missing, short, the write token the read one)."""
    problems = check_tokens(settings.console_token, settings.console_write_token)
    if problems:
        raise ConfigError("; ".join(problems))
    app = make_app(settings)
    port = args.port or settings.console_port
    logs.get_logger().info("console.started", port=port)

    async def serve() -> None:
        # Shorter than Kubernetes' 30 s grace: background passes are cancelled (and their end
        # lines written) before a SIGKILL could cut them.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
        await runner.setup()
        await web.TCPSite(runner, args.host, port).start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
    return 0

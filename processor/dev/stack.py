"""The whole system on this machine: ``Stack``, and ``zenoti-events up`` on it.

``Stack`` is the one launcher of our services, for ``up``, the tests and the benchmarks: the
environment they share (broker, webhook secret, API key, ports, settings) and a method per
service, over ``launcher.Children`` (spawn, wait ready, stop; nothing left running).

``up`` lets a newcomer see events flow. First a broker and Redis (``processor/dev/backing.py``:
the ones that answer, else private ones it starts; a broker it cannot have ends it with one
line saying how to get one). Then the sandbox (a stand-in Zenoti API), the ingress, a worker,
the operator's console (a fresh token each run, said on the terminal) and ``tap`` as
children, and the simulator posts signed deliveries. The ingress spools what the broker does
not confirm (``SPOOL_DIR``, else ``spool_dir_for``: kept across runs, so what a killed ``up``
left is forwarded by the next). The terminal shows the enriched events and one summary line
(``processor/dev/console.py``); the services' logs are kept apart (``--logs DIR``), quoted
when a service fails. Demo credentials only; never use them for real.

Ctrl-C, SIGTERM, SIGHUP or ``--seconds`` stop everything ``up`` started, the broker last, at
any point: a start-up that fails or is interrupted stops what it had started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from processor.dev import backing
from processor.dev.console import Console, Scoreboard
from processor.dev.launcher import Children, free_port
from processor.settings import Settings

DEMO_SECRET = "demo-webhook-secret"
DEMO_KEY = "demo-api-key"


def readyz(port: int) -> str:
    return f"http://127.0.0.1:{port}/readyz"


@dataclass
class Stack(Children):
    """Our services against ``amqp_url``; ``settings``: more ``ZENOTI_EVENTS_*`` variables."""

    amqp_url: str
    secret: str = DEMO_SECRET
    api_key: str = DEMO_KEY
    sandbox_port: int = field(default_factory=free_port)
    ingress_port: int = field(default_factory=free_port)
    worker_port: int = field(default_factory=free_port)
    console_port: int = field(default_factory=free_port)
    log_format: str = "json"
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ZENOTI_EVENTS_AMQP_URL": self.amqp_url,
            "ZENOTI_EVENTS_WEBHOOK_SECRETS": f'["{self.secret}"]',
            "ZENOTI_EVENTS_API_KEY": self.api_key,
            "ZENOTI_EVENTS_ZENOTI_API_URL": f"http://127.0.0.1:{self.sandbox_port}",
            "ZENOTI_EVENTS_INGRESS_HOST": "127.0.0.1",
            "ZENOTI_EVENTS_INGRESS_PORT": str(self.ingress_port),
            "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(self.worker_port),
            "ZENOTI_EVENTS_LOG_FORMAT": self.log_format,
            **self.settings,
        }

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}/webhooks/zenoti"

    def sandbox(self, *extra: str, timeout: float | None = None) -> subprocess.Popen[bytes]:
        return self.spawn("sandbox", "--port", str(self.sandbox_port), "--api-key",
                          self.api_key, *extra, timeout=timeout,
                          ready=f"http://127.0.0.1:{self.sandbox_port}/_sandbox/health")

    def ingress(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        return self.spawn("ingress", ready=readyz(self.ingress_port) if wait else None)

    def worker(self, *extra: str, port: int | None = None,
               wait: bool = True) -> subprocess.Popen[bytes]:
        """A worker (``extra``: its options) serving metrics on ``port`` (default: the
        stack's ``worker_port``)."""
        port = self.worker_port if port is None else port
        env = {**self.env, "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(port)}
        return self.spawn("worker", *extra, env=env, ready=readyz(port) if wait else None)


    def console(self, token: str, write_token: str | None = None, *,
                wait: bool = True) -> subprocess.Popen[bytes]:
        """The operator's console on ``console_port``, on loopback and plain HTTP (so its
        cookie is not ``Secure``), reading the ingress's and the worker's ``/metrics``."""
        metrics = [f"http://127.0.0.1:{port}/metrics"
                   for port in (self.ingress_port, self.worker_port)]
        env = {**self.env, "ZENOTI_EVENTS_CONSOLE_TOKEN": token,
               "ZENOTI_EVENTS_CONSOLE_SECURE_COOKIE": "false",
               "ZENOTI_EVENTS_CONSOLE_METRICS_URLS": json.dumps(metrics)}
        if write_token is not None:
            env["ZENOTI_EVENTS_CONSOLE_WRITE_TOKEN"] = write_token
        ready = f"http://127.0.0.1:{self.console_port}/login" if wait else None
        return self.spawn("console", "--host", "127.0.0.1", "--port", str(self.console_port),
                          env=env, ready=ready)


def spool_dir_for(port: int, environ: dict[str, str] | None = None) -> Path:
    """``up``'s spool when ``SPOOL_DIR`` is unset: ``$XDG_STATE_HOME`` (else
    ``~/.local/state``)``/zenoti-events/spool/ingress-<port>``. State, not cache: it holds
    deliveries answered 202. One per port, as two ``up``s on a machine need two ports."""
    env = os.environ if environ is None else environ
    state = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "zenoti-events" / "spool" / f"ingress-{port}"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("up", help="run sandbox, ingress, worker, tap and the simulator")
    parser.add_argument("--rate", type=float, default=2.0, help="deliveries per second")
    parser.add_argument("--count", type=int, default=100, help="deliveries to simulate")
    parser.add_argument("--seconds", type=float, default=0, help="stop after S s (0: Ctrl-C)")
    parser.add_argument("--ingress-port", type=int, default=8080)
    parser.add_argument("--sandbox-port", type=int, default=8090)
    parser.add_argument("--worker-port", type=int, default=9100)
    parser.add_argument("--console-port", type=int, default=8091)
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR",
                        help="keep the services' logs in DIR/<service>.log (default: kept "
                             "until exit, shown when a service fails)")
    parser.set_defaults(command=_run)


class Stopped(BaseException):
    """A signal asked ``up`` to stop (a BaseException: no ``except Exception`` swallows it)."""


class _Signals:
    """SIGINT, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, once (held while a
    child is being recorded: ``launcher.signals_held``). ``ignore()`` while stopping: the stop
    is bounded anyway."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self) -> _Signals:
        self._before = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)

    def ignore(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.ignore()
        raise Stopped(signum)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(sys.stdout)

    def say(line: str) -> None:
        console.say(f"zenoti-events up: {line}")

    with _Signals() as signals, contextlib.ExitStack() as started:
        started.callback(console.close)  # last: the final summary
        try:
            url = backing.broker(settings.amqp_url.get_secret_value(), started, say)
            told = settings.redis_url.get_secret_value() if settings.redis_url else None
            redis = backing.redis(told, started, say)
            stack = started.enter_context(Stack(
                url, sandbox_port=args.sandbox_port, ingress_port=args.ingress_port,
                worker_port=args.worker_port, console_port=args.console_port,
                output="capture", log_dir=args.logs,
                log_format=os.environ.get("ZENOTI_EVENTS_LOG_FORMAT", "json"),
                # None found: "" turns Redis off, rather than a dead URL from the environment
                settings={"ZENOTI_EVENTS_REDIS_URL": redis or "",
                          "ZENOTI_EVENTS_SPOOL_DIR": str(settings.spool_dir
                                                         or spool_dir_for(args.ingress_port))}))
            simulator = _start(args, stack, started, console, settings)
            return _watch(args.seconds, stack, simulator, console)
        except Stopped as stop:
            console.say(f"zenoti-events up: {signal.Signals(stop.args[0]).name}: "
                        "stopping what it started")
            return 0
        except backing.NoBroker as exc:
            console.say(f"zenoti-events up: {exc}", sys.stderr)
            return 2
        except (RuntimeError, OSError) as exc:  # a child or the broker did not start
            console.say(f"zenoti-events up: {exc}", sys.stderr)
            return 1
        finally:
            signals.ignore()
            # then ``started`` unwinds: the services stop, then a broker ``up`` started


def _start(args: argparse.Namespace, stack: Stack, started: contextlib.ExitStack,
           console: Console, settings: Settings) -> subprocess.Popen[bytes]:
    """Tap first (bound before the first event), sandbox, ingress and worker made ready, the
    summary's scoreboard, the console, then the simulator, which is returned."""
    tap = stack.spawn("tap", pipe=True)
    assert tap.stdout is not None
    console.follow(tap.stdout)
    stack.sandbox()
    ingress, worker = stack.ingress(wait=False), stack.worker(wait=False)
    stack.wait_ready(ingress, readyz(stack.ingress_port))
    stack.wait_ready(worker, readyz(stack.worker_port))
    metrics = [f"http://127.0.0.1:{port}/metrics" for port in (args.ingress_port,
                                                               args.worker_port)]
    board = Scoreboard(stack.amqp_url, metrics[0], metrics[1], settings.retry_tiers)
    board.start()
    started.callback(board.close)
    console.show(board)
    # Fresh tokens each run; the one said is the write token (this console is on loopback
    # alone), the read-only one is not used.
    token = secrets.token_urlsafe(12)
    stack.console(secrets.token_urlsafe(12), token)
    simulator = stack.spawn("simulate", "--url", stack.webhook_url, "--secret", stack.secret,
                            "--rate", str(args.rate), "--count", str(args.count))
    console.say(f"zenoti-events up: ingress {stack.webhook_url}, metrics {metrics[0]} and "
                f"{metrics[1]}; Ctrl-C stops")
    console.say(f"zenoti-events up: console http://127.0.0.1:{args.console_port} "
                f"(token {token}: it may replay and purge)")
    return simulator


def _watch(seconds: float, stack: Stack, simulator: subprocess.Popen[bytes],
           console: Console) -> int:
    """Show what comes until ``seconds`` pass (0: until a signal); 1 as soon as a service
    exits. The simulator's end is said once."""
    deadline = time.monotonic() + seconds if seconds else float("inf")
    simulating = True
    while time.monotonic() < deadline:
        console.refresh()
        gone = stack.exited(but=("simulate",))
        if gone is not None:
            console.say(f"zenoti-events up: {stack.name(gone)} exited with {gone.returncode}; "
                        f"stopping{stack.tail(gone)}", sys.stderr)
            return 1
        if simulating and simulator.poll() is not None:
            simulating = False
            said = "sent its deliveries" if simulator.returncode == 0 else (
                f"exited with {simulator.returncode}{stack.tail(simulator)}")
            console.say(f"zenoti-events up: the simulator {said}")
        time.sleep(0.25)
    return 0

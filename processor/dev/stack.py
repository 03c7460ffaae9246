"""``zenoti-events up``: the whole system on this machine, so a newcomer sees events flow.

First a broker, in this order: whatever answers at ``AMQP_URL`` (a TCP check of its host and
port); else a private node of the installed ``rabbitmq-server`` (``processor/devbroker.py``);
else RabbitMQ in Docker through testcontainers; else exit 2 with one line on how to get one.
Then the sandbox (a stand-in Zenoti API), the ingress, a worker and ``tap`` as child processes,
and the simulator posts signed deliveries. Demo credentials only; never use them for real.

Ctrl-C, SIGTERM, SIGHUP or ``--seconds`` stop everything ``up`` started, the broker last, at
any point: a start-up that fails or is interrupted stops what it had started. The children run
in a process group of their own (a Ctrl-C in the terminal reaches ``up`` alone, which stops
them in order); a child is recorded before a signal may interrupt ``up`` (``_Signals.held``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx

from processor.dev import broker as devbroker
from processor.settings import Settings

DEMO_SECRET = "demo-webhook-secret"
DEMO_KEY = "demo-api-key"
NO_BROKER = ("no RabbitMQ answers at {where}, rabbitmq-server is not installed and Docker does "
             "not answer: install one (e.g. apt-get install rabbitmq-server, brew install "
             "rabbitmq) or set ZENOTI_EVENTS_AMQP_URL")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("up", help="run sandbox, ingress, worker, tap and the simulator")
    parser.add_argument("--rate", type=float, default=2.0, help="deliveries per second")
    parser.add_argument("--count", type=int, default=100, help="deliveries to simulate")
    parser.add_argument("--seconds", type=float, default=0, help="stop after S s (0: Ctrl-C)")
    parser.add_argument("--ingress-port", type=int, default=8080)
    parser.add_argument("--sandbox-port", type=int, default=8090)
    parser.add_argument("--worker-port", type=int, default=9100)
    parser.set_defaults(command=_run)


class Stopped(BaseException):
    """A signal asked ``up`` to stop (a BaseException: no ``except Exception`` swallows it)."""


class NoBroker(Exception):
    """No broker answers and ``up`` cannot start one."""


class _Signals:
    """SIGINT, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, once; inside ``held()``
    they wait for its end. ``ignore()`` while stopping: the stop is bounded anyway."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._holding = False
        self._pending: int | None = None
        self._before: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        self._before = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)

    def ignore(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            if self._pending is not None:
                self.ignore()
                raise Stopped(self._pending)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = signum
            return
        self.ignore()
        raise Stopped(signum)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    with _Signals() as signals, contextlib.ExitStack() as broker:
        try:
            url = _broker(settings.amqp_url.get_secret_value(), broker, signals)
            _start(args, _env(args, url), children, signals)
            return _wait(args.seconds, children)
        except Stopped as stop:
            _say(f"{signal.Signals(stop.args[0]).name}: stopping what it started")
            return 0
        except NoBroker as exc:
            print(f"zenoti-events up: {exc}", file=sys.stderr, flush=True)
            return 2
        except (RuntimeError, OSError) as exc:  # a child or the broker did not start
            print(f"zenoti-events up: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            signals.ignore()
            _stop(children)
            # then ``broker`` unwinds: a broker ``up`` started stops last


def _broker(url: str, stack: contextlib.ExitStack, signals: _Signals) -> str:
    """The URL of a broker that answers, started here when need be (stopped by ``stack``)."""
    where = _where(url)
    if devbroker.answers(url):
        _say(f"broker {where} (ZENOTI_EVENTS_AMQP_URL, or the default)")
        return url
    scripts = devbroker.find_scripts()
    if scripts is not None:
        node = devbroker.PrivateNode(scripts=scripts, prefix="zenoti-up", start_timeout=60)
        stack.callback(node.close)
        _say(f"nothing answers at {where}: starting a private RabbitMQ node {node.name}")
        with signals.held():
            node.launch()
        node.wait_ready()
        _say(f"broker {node.url}: private node {node.name}, removed on exit")
        return node.url
    if devbroker.docker_answers() and (container := devbroker.rabbitmq_container()):
        stack.callback(container.stop)
        _say(f"nothing answers at {where}: starting RabbitMQ in Docker (testcontainers)")
        try:
            container.start()
        except Exception as exc:  # Docker's own errors, of every kind
            raise RuntimeError(f"RabbitMQ in Docker did not start: {exc}") from exc
        found = devbroker.container_url(container)
        _say(f"broker {found}: a container, removed on exit")
        return found
    raise NoBroker(NO_BROKER.format(where=where))


def _where(url: str) -> str:
    parts = urlsplit(url)
    with contextlib.suppress(ValueError):  # a port that is not a number
        return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    return "ZENOTI_EVENTS_AMQP_URL"


def _say(line: str) -> None:
    print(f"zenoti-events up: {line}", flush=True)


def _env(args: argparse.Namespace, amqp_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZENOTI_EVENTS_AMQP_URL": amqp_url,
        "ZENOTI_EVENTS_WEBHOOK_SECRETS": f'["{DEMO_SECRET}"]',
        "ZENOTI_EVENTS_API_KEY": DEMO_KEY,
        "ZENOTI_EVENTS_ZENOTI_API_URL": f"http://127.0.0.1:{args.sandbox_port}",
        "ZENOTI_EVENTS_INGRESS_PORT": str(args.ingress_port),
        "ZENOTI_EVENTS_WORKER_METRICS_PORT": str(args.worker_port),
        "ZENOTI_EVENTS_LOG_FORMAT": os.environ.get("ZENOTI_EVENTS_LOG_FORMAT", "console"),
    }


def _start(args: argparse.Namespace, env: dict[str, str],
           children: list[tuple[str, subprocess.Popen[bytes]]], signals: _Signals) -> None:
    def spawn(*argv: str) -> subprocess.Popen[bytes]:
        with signals.held():  # recorded before a signal can interrupt
            children.append((argv[0], _spawn(env, *argv)))
        return children[-1][1]

    sandbox = spawn("sandbox", "--port", str(args.sandbox_port), "--api-key", DEMO_KEY)
    _ready("sandbox", f"http://127.0.0.1:{args.sandbox_port}/_sandbox/health", sandbox)
    ingress, worker = spawn("ingress"), spawn("worker")
    _ready("ingress", f"http://127.0.0.1:{args.ingress_port}/readyz", ingress)
    _ready("worker", f"http://127.0.0.1:{args.worker_port}/readyz", worker)
    spawn("tap")
    url = f"http://127.0.0.1:{args.ingress_port}/webhooks/zenoti"
    spawn("simulate", "--url", url, "--secret", DEMO_SECRET, "--rate", str(args.rate),
          "--count", str(args.count))
    _say(f"ingress {url}, metrics :{args.ingress_port}/metrics and :{args.worker_port}/metrics; "
         "Ctrl-C stops")


def _spawn(env: dict[str, str], *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "processor.cli", *argv], env=env,
                            stdin=subprocess.DEVNULL, process_group=0)


def _ready(name: str, url: str, child: subprocess.Popen[bytes]) -> None:
    try:
        wait_ready(url, child)
    except RuntimeError as exc:
        raise RuntimeError(f"{name} did not start: {exc}") from exc


def wait_ready(
    url: str, child: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Return once ``url`` answers 200; ``RuntimeError`` if ``child`` exits first or time
    runs out. Used by ``up``, the tests and the benchmarks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"process exited with {child.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready within {timeout:g} s")


def _wait(seconds: float, children: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    """Until ``seconds`` pass (0: until a signal); 1 as soon as a service child exits."""
    deadline = time.monotonic() + seconds if seconds else float("inf")
    while time.monotonic() < deadline:
        for name, child in children:
            if name != "simulate" and child.poll() is not None:
                print(f"zenoti-events up: {name} exited with {child.returncode}; stopping",
                      file=sys.stderr, flush=True)
                return 1
        time.sleep(0.5)
    return 0


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for _, child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

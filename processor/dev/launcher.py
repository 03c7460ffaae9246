"""One launcher for the processes that ``zenoti-events up``, the tests and the benchmarks start.

``Children`` spawns ``python -m <module> ...`` (``processor.cli`` unless told; ``start`` runs
any command), waits until each child is ready and stops them all; ``Stack``
(``processor/dev/stack.py``) adds what our services share: their environment (broker,
webhook secret, API key, ports, settings) and one method per service.

    with Stack(amqp_url, secret=SECRET, api_key=KEY) as stack:  # all stopped on leaving
        stack.sandbox(); stack.ingress(); stack.worker()        # each ready, or NotReady
        post(stack.webhook_url, ...)

Whatever happens, nothing is left running:

- a child that exits before it is ready, or is not ready in time, stops the whole launcher
  (a start-up that fails leaves nothing half-started), then ``NotReady`` names it, with the
  tail of its output when captured;
- a child is recorded as soon as it exists: a signal that arrives meanwhile (Ctrl-C) is held
  until then and delivered after (``signals_held``), so the stop that follows reaches it;
- ``stop()`` sends SIGTERM to every child still running, the last started first, waits (a
  bound for all of them together), then SIGKILLs the process group of each one still there.
  Children run in process groups of their own: a Ctrl-C in the terminal reaches their owner
  alone, which stops them in order;
- children of a launcher never stopped are killed at interpreter exit all the same;
- an owner that dies with no exit at all (SIGKILL, the OOM killer, a SIGTERM it has no handler
  for) takes its children with it, on Linux: each gets SIGTERM then (``tether.py``: started
  tethered, on a thread that lasts as long as the owner, whichever thread asked).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self
from urllib.parse import urlsplit

from processor.dev.tether import on_lasting_thread, tethered

CLI = "processor.cli"
HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
Ready = str | Callable[[], bool]
Output = Literal["inherit", "logs", "capture"]
"""Where a child's output goes. ``inherit``: its owner's stdout and stderr. ``logs``: stdout
discarded, stderr (the logs) its owner's (the tests: pytest shows them). ``capture``: both
into a file per child (``log_dir/<name>.log``, else an anonymous temporary file) whose tail
``NotReady`` and ``tail()`` quote."""


class NotReady(RuntimeError):
    """A child exited before it was ready, or was not ready in time."""


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, and never one this process handed out before.

    The kernel may give the same ephemeral port to two probes in a row once the first is
    closed, so a ``Stack``'s ingress and worker once got one port between them and the second
    to start failed to bind. Remembering what was handed out makes the ports of one process
    distinct (a few thousand in a whole test run); other processes can still race for one,
    which is why a child that cannot bind fails its start loudly.
    """
    with _handed_out_lock:
        while True:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port: int = probe.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def answers(url: str, timeout: float = 1.0) -> bool:
    """``GET url`` is answered 200 (plain ``http.client``: no proxy, no log line per poll)."""
    return fetch(url, timeout) is not None


def fetch(url: str, timeout: float = 1.0) -> str | None:
    """The text at ``url``, or ``None`` when it does not answer 200 within ``timeout``; the
    connection is closed either way (a poll every 0.1 s must not pile up sockets)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        answer = connection.getresponse()
        return answer.read().decode() if answer.status == 200 else None
    except (OSError, http.client.HTTPException, UnicodeDecodeError):
        return None
    finally:
        connection.close()


def wait_ready(ready: Ready, child: subprocess.Popen[bytes] | None = None,
               timeout: float = 30.0) -> None:
    """Return once ``ready`` holds (a URL answering 200, or a check); ``NotReady`` when
    ``child`` exits first or ``timeout`` passes."""
    what = f" ({ready})" if isinstance(ready, str) else ""

    def check() -> bool:
        return answers(ready) if isinstance(ready, str) else ready()

    deadline = time.monotonic() + timeout
    while True:
        if child is not None and child.poll() is not None:
            raise NotReady(f"exited with {child.returncode} before it was ready{what}")
        if check():
            return
        if time.monotonic() >= deadline:
            raise NotReady(f"was not ready within {timeout:g} s{what}")
        time.sleep(0.1)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP that arrive inside are delivered on leaving, to the handlers
    of before. Only the main thread receives signals: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, _: pending.append(signum)) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if pending:
            signal.raise_signal(pending[0])


@dataclass(kw_only=True)
class Children:
    """The child processes of one owner; see the module's docstring."""

    cwd: Path | None = None
    output: Output = "logs"
    log_dir: Path | None = None
    ready_timeout: float = 30.0
    stop_timeout: float = 30.0
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._names: dict[int, str] = {}
        self._logs: dict[int, IO[bytes]] = {}
        weakref.finalize(self, _kill_all, self.children)

    @property
    def env(self) -> dict[str, str]:
        """The children's environment (this process's, unless a subclass says more)."""
        return dict(os.environ)

    def spawn(self, *argv: str, module: str = CLI, env: Mapping[str, str] | None = None,
              ready: Ready | None = None, timeout: float | None = None,
              pipe: bool = False) -> subprocess.Popen[bytes]:
        """Start ``python -m module argv`` (see ``start``), named by its command when the
        module is ``processor.cli``, else by the module."""
        name = argv[0] if module == CLI and argv else module
        return self.start(name, [sys.executable, "-m", module, *argv], env=env, ready=ready,
                          timeout=timeout, pipe=pipe)

    def start(self, name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None,
              ready: Ready | None = None, timeout: float | None = None,
              pipe: bool = False) -> subprocess.Popen[bytes]:
        """Start ``command`` and, given ``ready``, wait until it is (see ``wait_ready``).
        ``pipe``: its stdout is a pipe for the caller to read."""
        environment = dict(self.env if env is None else env)
        argv = tethered(command, environment)  # tied to this process's life (Linux)
        log = self._log_file(name)
        out = log if log is not None else (None if self.output == "inherit" else
                                           subprocess.DEVNULL)
        try:
            with signals_held():
                child = on_lasting_thread(lambda: subprocess.Popen(
                    argv, cwd=self.cwd, stdin=subprocess.DEVNULL, process_group=0,
                    env=environment, stdout=subprocess.PIPE if pipe else out, stderr=log))
                self.children.append(child)
        except BaseException:
            if log is not None:
                log.close()
            raise
        self._names[child.pid] = name
        if log is not None:
            self._logs[child.pid] = log
        if ready is not None:
            self.wait_ready(child, ready, timeout)
        return child

    def wait_ready(self, child: subprocess.Popen[bytes], ready: Ready,
                   timeout: float | None = None) -> None:
        """Until ``ready`` holds; else every child is stopped and ``NotReady`` raised (or
        whatever else interrupted the wait)."""
        try:
            wait_ready(ready, child, self.ready_timeout if timeout is None else timeout)
        except NotReady as exc:
            failure = NotReady(f"{self.name(child)} {exc}{self.tail(child)}")
            self.stop()
            raise failure from None
        except BaseException:
            self.stop()
            raise

    def name(self, child: subprocess.Popen[bytes]) -> str:
        return self._names.get(child.pid, str(child.pid))

    def exited(self, *, but: tuple[str, ...] = ()) -> subprocess.Popen[bytes] | None:
        """The first child that exited, of those not named in ``but``."""
        return next((child for child in self.children
                     if self.name(child) not in but and child.poll() is not None), None)

    def tail(self, child: subprocess.Popen[bytes], chars: int = 3000) -> str:
        """The end of a captured child's output, after a newline; "" when not captured."""
        log = self._logs.get(child.pid)
        if log is None or log.closed:
            return ""
        size = os.fstat(log.fileno()).st_size  # pread: the offset it shares stays put
        text = os.pread(log.fileno(), chars * 4, max(0, size - chars * 4)).decode(
            errors="replace")[-chars:]
        return f"\n--- output of {self.name(child)} ---\n{text}" if text else ""

    def stop(self, timeout: float | None = None) -> list[int | None]:
        """Stop every child (``stop``); their exit codes in start order, None for one that
        had to be killed."""
        codes = stop(self.children, self.stop_timeout if timeout is None else timeout)
        for log in self._logs.values():
            log.close()
        return codes

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _log_file(self, name: str) -> IO[bytes] | None:
        if self.output != "capture":
            return None
        if self.log_dir is None:
            return tempfile.TemporaryFile()  # closed by stop()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab+")  # closed by stop()


def stop(children: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[int | None]:
    """SIGTERM to each of ``children`` still running, the last first; once ``timeout``
    passed, SIGKILL to the process group of each one still there. Their exit codes, None
    for one that had to be killed."""
    for child in reversed(children):
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    return [_reap(child, deadline) for child in children]


def _reap(child: subprocess.Popen[bytes], deadline: float) -> int | None:
    try:
        return child.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(child)
        return None


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the child's process group (its own: ``process_group=0``), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(10)


def _kill_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            _kill_group(child)

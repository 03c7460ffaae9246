"""Children that die with their owner, however it dies (Linux).

Our children run in process groups of their own (a Ctrl-C reaches their owner alone, which
stops them in order), so nothing reaches them when the owner dies without stopping them:
SIGKILL, the OOM killer, or SIGTERM in a process with no handler for it (pytest, a benchmark,
a CI timeout), where no ``atexit`` or ``weakref.finalize`` runs. ``tethered(command)`` makes
a child die with its owner all the same. It is ``command`` behind a few lines of Python
(``python -S -P -c``) that ask the kernel for SIGTERM when their parent dies
(``prctl(PR_SET_PDEATHSIG)``), exit if the owner is already gone, put back the signals Python
ignores (as ``subprocess`` does) and exec ``command`` in place: the same pid, and the request
survives ``exec``. (``subprocess``'s ``preexec_fn`` could ask the same, but it is unsafe in a
process with threads.) A command that is not installed raises ``FileNotFoundError`` here, at
once, as ``subprocess`` would.

The kernel's "parent" is the *thread* that started the child: the signal comes when that
thread ends, though the owner lives on. ``on_lasting_thread(start)`` therefore starts children
on a thread that lasts as long as the process: the caller's when it is the main thread, else
one daemon thread kept for the purpose (``asyncio.to_thread`` and thread pools end theirs).

What this does not do: SIGTERM reaches the child alone, not the processes it started itself
(each of ours stops its own on SIGTERM: the ``rabbitmq-server`` script stops the Erlang VM); a
child that ignores SIGTERM outlives an owner killed outright. Elsewhere than on Linux both
functions do nothing: the command runs as given, started on the caller's thread.

Two more for processes of a session of their own: ``kill_group`` (SIGKILL to a whole process
group) and ``wait_gone`` (until a process is gone); and ``run``, a command run to its end in
a session of its own, its whole group killed when it is late or interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_TETHER = """\
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:
    sys.stderr.write(f"tether: prctl: errno {ctypes.get_errno()}: not tied to its owner\\n")
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)
for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
os.execv(sys.argv[2], sys.argv[3:])
"""
"""The child's side: PR_SET_PDEATHSIG is 1; ``argv``: the owner's pid, the program, its argv."""


def supported() -> bool:
    """A child can be tied to its owner here (Linux)."""
    return sys.platform.startswith("linux") and bool(sys.executable)


def tethered(command: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``command`` made to receive SIGTERM when this process dies (see the module's docstring);
    ``env``: the child's environment, whose ``PATH`` finds the program. As given where not
    ``supported``. ``FileNotFoundError`` when the program is not found."""
    argv = list(command)
    if not argv or not supported():
        return argv
    program = argv[0]
    if os.sep not in program:
        path = (os.environ if env is None else env).get("PATH", os.defpath)
        found = shutil.which(program, path=path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        program = found
    return [sys.executable, "-S", "-P", "-c", _TETHER, str(os.getpid()), program, *argv]


def on_lasting_thread(start: Callable[[], T]) -> T:
    """``start()``'s result, run on a thread that lives as long as this process (see the
    module's docstring); its exception, raised here."""
    if not supported() or threading.current_thread() is threading.main_thread():
        return start()
    done: Future[T] = Future()
    _Spawner.jobs().put((start, done))
    return done.result()


def run(command: Sequence[str], *, env: dict[str, str], cwd: Path,
        timeout: float) -> subprocess.CompletedProcess[str] | None:
    """``subprocess.run`` in a session of its own, tethered (on the caller's thread, which
    waits for it throughout); None when late. Late or interrupted, its whole process group
    is killed (``run`` kills only the process it started)."""
    with subprocess.Popen(tethered(command, env), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            return None
        except BaseException:
            kill_group(process.pid)
            raise
    return subprocess.CompletedProcess(list(command), process.returncode, out, err)


def kill_group(pgid: int) -> None:
    """SIGKILL to process group ``pgid``, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def wait_gone(pid: int | None, timeout: float = 30.0) -> None:
    """Until process ``pid`` is gone, or a zombie (dead; its parent was killed), or
    ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while pid is not None and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return
        time.sleep(0.05)


class _Spawner:
    """The daemon thread that starts children for threads that may end, one per process."""

    _lock = threading.Lock()
    _queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] | None = None

    @classmethod
    def jobs(cls) -> queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]:
        """Its queue, the thread started at first use."""
        with cls._lock:
            if cls._queue is None:
                cls._queue = queue.SimpleQueue()
                threading.Thread(target=cls._serve, args=(cls._queue,), daemon=True,
                                 name="zenoti-events children").start()
            return cls._queue

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
        while True:
            start, done = jobs.get()
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(start())
            except BaseException as exc:  # the caller's to handle, never this thread's end
                done.set_exception(exc)

    @classmethod
    def forget(cls) -> None:
        """In a forked child: no thread of the parent's runs here; start one when needed."""
        cls._lock = threading.Lock()
        cls._queue = None


os.register_at_fork(after_in_child=_Spawner.forget)

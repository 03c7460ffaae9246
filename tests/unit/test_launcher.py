"""The one launcher (``processor.dev.launcher.Children``, under ``Stack``) leaves nothing
running: not after a child that never became ready, nor one that exited first, nor a Ctrl-C
in the middle of a spawn, nor a child deaf to SIGTERM, nor an owner that never stopped it,
nor (Linux) an owner killed outright, whichever thread started the child."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from processor.dev import launcher, tether
from processor.dev.launcher import Children, NotReady, signals_held

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups")

SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"
DEAF = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('deaf', flush=True)\ntime.sleep(120)\n")
OWNER = """\
import sys, threading, time
from processor.dev.launcher import Children
children = Children(cwd=".", output="capture")
def start():  # returns once the child runs the sleeper (no longer the lines before it)
    return children.spawn(module="sleeper",
                          ready=lambda: "sleeping" in children.tail(children.children[-1]))
if sys.argv[1] == "thread":  # started on a thread that has ended before the owner dies
    started = []
    spawner = threading.Thread(target=lambda: started.append(start()))
    spawner.start()
    spawner.join()
    child = started[0]
else:
    child = start()
print(child.pid, flush=True)
time.sleep(120)
"""
linux = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    """A directory of tiny modules to run with ``python -m``."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "deaf.py").write_text(DEAF)
    return tmp_path


def gone(pid: int, timeout: float = 5.0) -> bool:
    """Process ``pid`` no longer runs (reaped, or a zombie of a parent that is not us)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def alive(pid: int) -> bool:
    """Process ``pid`` runs (not a zombie)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def test_a_child_never_ready_in_time_raises_and_leaves_no_child_running(modules: Path) -> None:
    children = Children(cwd=modules, output="capture")
    first = children.spawn(module="sleeper")
    began = time.monotonic()
    with pytest.raises(NotReady, match=r"^sleeper was not ready within 1 s") as info:
        children.spawn(module="sleeper", ready=lambda: False, timeout=1)
    assert time.monotonic() - began < 1 + children.stop_timeout
    assert "sleeping" in str(info.value), "the captured output is quoted"
    assert len(children.children) == 2
    late = children.children[1]
    assert first.poll() is not None and late.poll() is not None
    assert gone(first.pid) and gone(late.pid)


def test_a_child_that_exits_before_it_is_ready_is_named_with_its_output() -> None:
    children = Children(output="capture")
    with pytest.raises(NotReady) as info:
        children.spawn("no-such-command", ready="http://127.0.0.1:9/readyz")
    said = str(info.value)
    assert said.startswith("no-such-command exited with 2 before it was ready "
                           "(http://127.0.0.1:9/readyz)")
    assert "invalid choice: 'no-such-command'" in said


def test_a_ctrl_c_during_a_spawn_comes_after_the_child_is_recorded(
    modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    popen = subprocess.Popen

    def interrupted(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        child: subprocess.Popen[bytes] = popen(*args, **kwargs)  # type: ignore[call-overload]
        signal.raise_signal(signal.SIGINT)  # the child exists, not yet recorded
        return child

    monkeypatch.setattr(subprocess, "Popen", interrupted)
    children = Children(cwd=modules)
    with pytest.raises(KeyboardInterrupt):
        children.spawn(module="sleeper")
    [child] = children.children
    children.stop()
    assert gone(child.pid)


def test_signals_held_are_delivered_on_leaving_not_before() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        reached = True
    assert reached


def test_stop_kills_a_child_deaf_to_sigterm_once_the_bound_passed(modules: Path) -> None:
    children = Children(cwd=modules, output="capture")
    child = children.spawn(module="deaf",
                           ready=lambda: "deaf" in children.tail(children.children[0]))
    began = time.monotonic()
    assert children.stop(timeout=1) == [None]
    assert 1 <= time.monotonic() - began < 10
    assert gone(child.pid)


def test_children_of_an_owner_that_never_stopped_them_are_killed_at_exit(
    modules: Path,
) -> None:
    owner = textwrap.dedent("""
        from processor.dev.launcher import Children
        child = Children(cwd=".").spawn(module="sleeper")
        print(child.pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", owner], cwd=modules, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 0, done.stderr
    assert gone(int(done.stdout.split()[0]))


@linux
@pytest.mark.parametrize(("death", "where"), [
    (signal.SIGKILL, "main"),
    (signal.SIGTERM, "main"),   # a process with no handler for it: no atexit, no finalizer
    (signal.SIGKILL, "thread"),
], ids=["sigkill", "unhandled-sigterm", "sigkill-started-on-a-thread-since-ended"])
def test_children_die_with_an_owner_killed_outright(
    modules: Path, death: signal.Signals, where: str
) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, where], cwd=modules, text=True,
                             stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert owner.stdout is not None
    pid = 0
    try:
        assert select.select([owner.stdout], [], [], 30)[0], "the owner started no child"
        pid = int(owner.stdout.readline())
        time.sleep(0.5)  # the thread that started it is long gone
        assert alive(pid), "a child lives as long as its owner, not its owner's thread"

        owner.send_signal(death)
        assert owner.wait(10) == -death

        assert gone(pid, timeout=10), "the child outlived its owner"
    finally:
        owner.kill()
        owner.wait(10)
        owner.stdout.close()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@linux
def test_a_tethered_child_gets_the_signal_dispositions_of_a_plain_one(tmp_path: Path) -> None:
    """The few lines of Python before the command leave it no signal ignored that
    ``subprocess`` would not (Python ignores SIGPIPE and SIGXFSZ for itself)."""
    children = Children(output="capture", cwd=tmp_path)
    child = children.start("status", ["cat", "/proc/self/status"])
    assert child.wait(10) == 0
    status = children.tail(child)
    children.stop()
    ignored = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("SigIgn:")), 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)), hex(ignored)


def test_a_command_not_installed_is_refused_at_start() -> None:
    with pytest.raises(FileNotFoundError):
        Children().start("missing", ["zenoti-events-no-such-command"])


def test_without_pdeathsig_the_command_runs_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tether.tethered(["redis-server", "--port", "1"]) == ["redis-server", "--port", "1"]


class _SamePortTwice:
    """A socket whose kernel hands out 40001, 40001 again, then 40002."""

    ports = iter([40001, 40001, 40002])

    def __init__(self) -> None:
        self.port = next(self.ports)

    def __enter__(self) -> _SamePortTwice:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        return None

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_free_port_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel reusing a just-closed probe's port gave a Stack's ingress and worker one
    # port between them (the second child failed to bind).
    monkeypatch.setattr(launcher, "_handed_out", set())
    monkeypatch.setattr(launcher, "socket", types.SimpleNamespace(socket=_SamePortTwice))
    assert [launcher.free_port(), launcher.free_port()] == [40001, 40002]


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = [launcher.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports[-1]))

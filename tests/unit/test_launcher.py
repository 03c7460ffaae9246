"""The one launcher (``processor.dev.launcher.Children``, under ``Stack``) leaves nothing
running: not after a child that never became ready, nor one that exited first, nor a Ctrl-C
in the middle of a spawn, nor a child deaf to SIGTERM, nor an owner that never stopped it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from processor.dev.launcher import Children, NotReady, signals_held

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups")

SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"
DEAF = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('deaf', flush=True)\ntime.sleep(120)\n")


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

"""A private RabbitMQ node (``processor.dev.node.PrivateNode``) leaves nothing behind however
its owner lets it go: closed, dropped without a close (its finalizer: the process and the
directory), crashed then dropped, or the owner killed outright (the node's process gets SIGTERM
on Linux, whichever thread launched it). A stand-in ``rabbitmq-server`` script stands for the
real one: these are about the node's process and directory, not RabbitMQ's (the real one:
``tests/integration/test_owner_death.py``)."""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from processor.dev.node import PrivateNode

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups")

SCRIPT = '#!/bin/sh\necho $$ > "$ZENOTI_TEST_NODE_PID"\nexec sleep 120\n'
OWNER = """\
import os, sys, threading, time
from pathlib import Path
from processor.dev.node import PrivateNode
node = PrivateNode(scripts=Path(sys.argv[1]))
if sys.argv[2] == "thread":
    launcher = threading.Thread(target=node.launch)
    launcher.start()
    launcher.join()
else:
    node.launch()
while not Path(os.environ["ZENOTI_TEST_NODE_PID"]).exists():  # the script runs
    time.sleep(0.05)
print(node.dir, flush=True)
if sys.argv[3] == "wait":
    time.sleep(120)
"""


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a ``rabbitmq-server`` that writes its pid, then sleeps."""
    place = tmp_path / "scripts"
    place.mkdir()
    (place / "rabbitmq-server").write_text(SCRIPT)
    (place / "rabbitmq-server").chmod(0o755)
    monkeypatch.setenv("ZENOTI_TEST_NODE_PID", str(tmp_path / "node.pid"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # nodes' directories where pytest cleans,
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # in the owners and here
    return place


def script_pid(tmp_path: Path, timeout: float = 10.0) -> int:
    """The stand-in script's pid, once it wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int((tmp_path / "node.pid").read_text())
        time.sleep(0.05)
    raise AssertionError("the stand-in rabbitmq-server never ran")


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Process ``pid`` no longer runs (or is a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_node_closed_leaves_neither_its_process_nor_its_directory(
    scripts: Path, tmp_path: Path
) -> None:
    node = PrivateNode(scripts=scripts)
    node.launch()
    home, pid = node.dir, script_pid(tmp_path)
    assert home is not None and home.is_dir()
    assert oct(home.stat().st_mode & 0o777) == oct(0o700), "its owner's alone"

    node.close()

    assert gone(pid) and not home.exists() and node.dir is None


@pytest.mark.parametrize("crashed", [False, True], ids=["running", "crashed-first"])
def test_a_node_dropped_without_a_close_leaves_neither_its_process_nor_its_directory(
    scripts: Path, tmp_path: Path, crashed: bool
) -> None:
    node = PrivateNode(scripts=scripts)
    node.launch()
    home, pid = node.dir, script_pid(tmp_path)
    if crashed:
        node.kill()  # SIGKILL, as the fault tests do, and never closed
    assert home is not None

    del node
    gc.collect()

    assert gone(pid), "the node's process outlived it"
    assert not home.exists(), f"left behind: {home}"


def test_a_node_never_closed_is_gone_with_its_directory_at_interpreter_exit(
    scripts: Path, tmp_path: Path
) -> None:
    done = subprocess.run([sys.executable, "-c", OWNER, str(scripts), "main", "exit"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 0, done.stderr
    assert gone(script_pid(tmp_path))
    assert not Path(done.stdout.strip()).exists(), "the directory outlived its owner"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_node_stops_when_its_owner_is_killed_outright(
    scripts: Path, tmp_path: Path, where: str
) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(scripts), where, "wait"],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert owner.stdout is not None
    pid = 0
    try:
        assert select.select([owner.stdout], [], [], 30)[0], "the owner launched no node"
        owner.stdout.readline()
        pid = script_pid(tmp_path)
        time.sleep(0.5)
        assert not gone(pid, timeout=0.2), "the node lives as long as its owner"

        owner.send_signal(signal.SIGKILL)
        owner.wait(10)

        assert gone(pid), "the node's process outlived its owner"
    finally:
        owner.kill()
        owner.wait(10)
        owner.stdout.close()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

"""An owner killed outright takes its private RabbitMQ node with it: the real
``rabbitmq-server`` (its script gets SIGTERM and stops the Erlang VM it started), not only the
process the owner started. The node's directory stays (no code of the owner's runs any more):
it is made under this test's temporary directory."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.rabbit import find_scripts

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG; /proc")]

OWNER = """\
import time
from tests.rabbit import PrivateNode
node = PrivateNode(prefix="zenoti-owner-death").start()
print(node.name, node.os_pid(), flush=True)
time.sleep(300)
"""


def running_with(text: str) -> list[int]:
    """The live processes whose command line or environment holds ``text`` (the node's name:
    its script, the Erlang VM and the VM's helpers inherit ``RABBITMQ_NODENAME``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            zombie = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if text.encode() in line and not zombie:
            found.append(int(entry.name))
    return found


def test_a_private_node_stops_when_its_owner_is_sigkilled(tmp_path: Path) -> None:
    if find_scripts() is None:
        missing("no rabbitmq-server here")
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": str(tmp_path),
                                  "PYTHONPATH": str(Path.cwd())})
    assert owner.stdout is not None
    name, vm = "", 0
    try:
        assert select.select([owner.stdout], [], [], 120)[0], "the node did not start"
        name, said = owner.stdout.readline().split()
        vm = int(said)
        assert vm in running_with(name), "the node runs while its owner does"

        owner.send_signal(signal.SIGKILL)
        owner.wait(10)

        deadline = time.monotonic() + 60  # a clean stop of the node: seconds
        while (left := running_with(name)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"the node outlived its owner: {left}"
    finally:
        owner.kill()
        owner.wait(10)
        owner.stdout.close()
        for left_over in running_with(name) if name else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(left_over, signal.SIGKILL)

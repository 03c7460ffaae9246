"""A process that cannot start says why in one JSON line and exits 1, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import Broker
from tests.integration.processes import Stack

pytestmark = pytest.mark.integration


def test_a_taken_port_is_one_line_naming_it(broker: Broker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**Stack(broker.url).env, "ZENOTI_EVENTS_INGRESS_PORT": str(port)}
        done = subprocess.run([sys.executable, "-m", "processor.cli", "ingress"], env=env,
                              capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    failed = [line for line in lines if '"process.failed"' in line]
    assert len(failed) == 1 and str(port) in failed[0] and '"kind": "OSError"' in failed[0]

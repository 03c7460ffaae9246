"""``zenoti-events up`` as a newcomer runs it, with no broker answering: it starts a private
RabbitMQ node of the installed ``rabbitmq-server``, events flow, and it leaves nothing behind
(no process, no temporary directory), also when a signal interrupts it while starting.

Every process ``up`` starts inherits a marker in its environment (the node too: it gets ``up``'s
environment), so "nothing left" is checked on the whole tree, not on the ones we thought of."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from processor.cli import main
from processor.dev import container as devcontainer
from processor.dev import node as devnode
from tests.conftest import missing
from tests.integration.processes import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

NODE = re.compile(r"starting a private RabbitMQ node (\S+)")
CONSOLE = re.compile(r"console (http://127\.0\.0\.1:\d+) \(token ([^:\s]+):")
ENRICHED = re.compile(r"^guest\.\S+\s+tenant=default guest=", re.MULTILINE)
SUMMARY = re.compile(r"^accepted (\d+)  enriched (\d+)  parked (\d+)  "
                     r"waiting for the API budget (\d+)$", re.MULTILINE)


@pytest.fixture
def rabbitmq_server() -> None:
    """``up`` needs the installed ``rabbitmq-server`` here; missing, a skip (a failure in CI)."""
    if devnode.find_scripts() is None:
        missing("no rabbitmq-server here: up cannot start its own broker")


@dataclass
class Up:
    """One ``zenoti-events up`` in a session of its own, as a terminal would run it."""

    process: subprocess.Popen[str]
    marker: str
    tmp: Path
    lines: queue.Queue[str]
    stdout: list[str]
    stderr: list[str]

    def __post_init__(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=_read, args=(self.process.stdout, self.stdout, self.lines),
                             daemon=True),
            threading.Thread(target=_read, args=(self.process.stderr, self.stderr), daemon=True)]
        for reader in self.readers:
            reader.start()

    def line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first line of its output (from now on) that matches, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                found = pattern.search(self.lines.get(timeout=left))
            except queue.Empty:
                break
            if found:
                return found
        raise AssertionError(f"no line like {pattern.pattern!r}:\n{''.join(self.stdout)}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Its exit code, whole output and error output once it exited."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        for reader in self.readers:
            reader.join(10)
        return code, "".join(self.stdout), "".join(self.stderr)


@pytest.fixture
def up(rabbitmq_server: None, tmp_path: Path) -> Iterator[Up]:
    marker = uuid.uuid4().hex
    temporary = tmp_path / "tmp"  # what must be empty after: the spool's state is not
    temporary.mkdir()
    env = {**os.environ, "ZENOTI_UP_TEST_MARKER": marker, "TMPDIR": str(temporary),
           "XDG_STATE_HOME": str(tmp_path / "state"),
           "ZENOTI_EVENTS_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
           "ZENOTI_EVENTS_LOG_FORMAT": "json"}
    argv = [sys.executable, "-m", "processor.cli", "up", "--count", "5", "--seconds", "20",
            "--ingress-port", str(free_port()), "--sandbox-port", str(free_port()),
            "--worker-port", str(free_port()), "--console-port", str(free_port())]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    started = Up(process, marker, temporary, queue.Queue(), [], [])
    yield started
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for pid in _marked(marker):  # after a failed test: everything down, the node included
        _kill(pid)
    process.wait(10)
    for reader in started.readers:
        reader.join(10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _read(stream: IO[str], into: list[str], lines: queue.Queue[str] | None = None) -> None:
    for line in stream:
        into.append(line)
        if lines is not None:
            lines.put(line)


def test_up_without_a_broker_starts_its_own_node_and_leaves_nothing_behind(up: Up) -> None:
    node = up.line(NODE, timeout=30).group(1)
    began = time.monotonic()
    code, stdout, stderr = up.finish(timeout=80)

    assert code == 0, stderr[-3000:]
    assert f"private node {node}" in stdout, stdout
    assert time.monotonic() - began > 19, "stopped before --seconds"
    assert "Traceback" not in stderr, stderr[-3000:]
    _assert_nothing_left(up, node)


def test_up_shows_the_enriched_events_and_one_summary_line_not_the_logs(up: Up) -> None:
    said = up.line(CONSOLE, timeout=60)
    console_url, token = said.group(1), said.group(2)
    with httpx.Client(base_url=console_url, timeout=10, follow_redirects=True) as browser:
        assert browser.post("/login", data={"token": token}).status_code == 200
        assert "Parked in unrouted" in browser.get("/lot/unrouted").text
    code, stdout, stderr = up.finish(timeout=80)

    assert code == 0, stderr[-3000:]
    events = ENRICHED.findall(stdout)
    accepted, enriched, parked, waiting = map(int, SUMMARY.findall(stdout)[-1])
    assert (accepted, waiting) == (5, 0), stdout  # --count 5, all done within --seconds
    assert enriched == len(events) > 0 and enriched + parked == 5, stdout
    others = [line for line in stdout.splitlines() if not ENRICHED.match(line)
              and not SUMMARY.match(line) and not line.startswith("zenoti-events up: ")]
    assert not others, f"not an event, the summary or up's own word: {others}"
    assert not stderr, f"the services' logs are kept apart: {stderr[-3000:]}"
    # The ingress spooled nothing (the broker confirmed all), in the spool kept across runs.
    (spool,) = (up.tmp.parent / "state" / "zenoti-events" / "spool").iterdir()
    assert spool.name.startswith("ingress-") and (spool / "LOCK").exists()
    assert not list(spool.glob("*.seg")), "an empty spool holds no segment"


@pytest.mark.parametrize(("moment", "after"), [
    (NODE, 1.5),                                # the node is booting
    # the services are starting: they take seconds (three Python processes made ready in
    # turn), so a moment after the broker is named they are still on their way
    (re.compile(r"broker amqp://\S+: private node"), 0.2),
], ids=["while-the-node-boots", "while-the-services-start"])
def test_a_ctrl_c_while_starting_stops_what_was_started_without_a_traceback(
    up: Up, moment: re.Pattern[str], after: float
) -> None:
    node = up.line(NODE, timeout=30).group(1)
    if moment is not NODE:
        up.line(moment, timeout=60)
    time.sleep(after)
    assert up.process.poll() is None, "up ended before it was interrupted"
    os.killpg(up.process.pid, signal.SIGINT)  # as the terminal does: to the foreground group

    code, stdout, stderr = up.finish(timeout=60)

    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert "Ctrl-C stops" not in stdout, "the start-up was not interrupted"
    _assert_nothing_left(up, node)


@pytest.mark.usefixtures("logging_restored")  # main() points logging at this test's stderr
def test_up_with_no_broker_and_no_way_to_start_one_says_how_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    monkeypatch.setattr(devnode, "find_scripts", lambda directory=None: None)
    monkeypatch.setattr(devcontainer, "docker_answers", lambda timeout=20.0: False)

    assert main(["up", "--seconds", "1"]) == 2

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "rabbitmq-server" in lines[0] and "ZENOTI_EVENTS_AMQP_URL" in lines[0], lines


def _assert_nothing_left(up: Up, node: str) -> None:
    deadline = time.monotonic() + 5  # a reaped child may linger in /proc for an instant
    while (left := _marked(up.marker) + _marked(node)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"left running: {[_describe(pid) for pid in left]}"
    assert not list(up.tmp.iterdir()), f"left behind: {list(up.tmp.iterdir())}"


def _marked(text: str) -> list[int]:
    """The live processes whose command line or environment holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            zombie = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
        except (OSError, IndexError):
            continue
        if text.encode() in seen and not zombie:
            found.append(int(entry.name))
    return found


def _describe(pid: int) -> str:
    try:
        return f"{pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:200]!r}"
    except OSError:
        return f"{pid} (gone)"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

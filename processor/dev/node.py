"""A RabbitMQ of our own, for ``zenoti-events up`` and the tests that break a broker.

``PrivateNode`` starts the installed ``rabbitmq-server`` as a node of its own: its own name,
AMQP and distribution ports, data, log, config, enabled-plugins file and Erlang cookie, all in a
temporary directory (``node_home.py``) that ``close()`` removes. Every command names it
(``rabbitmqctl -n``) and carries its cookie, which no other node has: nothing done to it reaches
the broker a developer runs (``rabbit@<host>`` on 5672). It and its commands run in sessions of
their own, so a Ctrl-C in the terminal reaches only the Python process, which stops them in
order.

    with PrivateNode(scripts=find_scripts()) as node:   # started; stopped and removed on exit
        node.url                                        # amqp://guest:guest@127.0.0.1:<port>/

Nothing of it outlives it: ``close()`` stops it and removes its directory; a node dropped
unclosed, or still open at interpreter exit, has both done by its finalizer; an owner
killed outright (SIGKILL, OOM, a SIGTERM it has no handler for) takes the node's process with
it on Linux (``tether.py``: the script gets SIGTERM and stops the Erlang VM), but its
directory stays: no code of the owner's runs any more to remove it.

``tests/rabbit.py`` builds its faults (restarts, crashes, alarms) on ``PrivateNode``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from processor.dev.node_home import NodeError, NodeHome
from processor.dev.ports import listening, quiet_port
from processor.dev.tether import kill_group, on_lasting_thread, run, tethered, wait_gone

__all__ = ["NodeError", "PrivateNode", "find_scripts"]

_PLACES = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin",
           "/usr/local/opt/rabbitmq/sbin")


def find_scripts(directory: str | Path | None = None) -> Path | None:
    """The directory of the real ``rabbitmq-server`` scripts (``directory`` first, then the
    ``PATH`` and the usual places), or None when not installed. Not a distribution's wrapper
    (Debian's ``/usr/sbin/rabbitmqctl`` switches to the ``rabbitmq`` user and its files): the
    directory must also hold ``rabbitmq-env``."""
    candidates = [Path(directory)] if directory else []
    found = shutil.which("rabbitmq-server",
                         path=os.pathsep.join([os.environ.get("PATH", ""), *_PLACES]))
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in _PLACES]
    for place in candidates:
        if all((place / n).is_file() for n in ("rabbitmq-server", "rabbitmqctl", "rabbitmq-env")):
            return place
    return None


class PrivateNode:
    """One RabbitMQ node of its owner alone; see the module's docstring.

    ``start()`` is ``launch()`` (the OS process, at once) then ``wait_ready()`` (bounded by
    ``start_timeout``; ``NodeError`` with the log's tail if the node fails or is late).
    ``close()``: ``stop()`` (SIGTERM, then SIGKILL of its process group), directory removed.
    """

    def __init__(self, *, scripts: Path, cookie: str | None = None, config: str = "",
                 start_timeout: float = 90.0, prefix: str = "zenoti-dev") -> None:
        self.scripts = scripts
        self.name = f"{prefix}-{secrets.token_hex(4)}@localhost"
        self.cookie = cookie or secrets.token_hex(20)
        self.amqp_port = quiet_port()
        self.dist_port = quiet_port()
        while self.dist_port == self.amqp_port:
            self.dist_port = quiet_port()
        self.start_timeout = start_timeout
        self.start_seconds: list[float] = []
        self._home = NodeHome(self.name, self.cookie, self.amqp_port, self.dist_port, config)
        self._left = _Remains(self._home)
        self._reaper = weakref.finalize(self, self._left.clear)
        self._began = 0.0

    @property
    def url(self) -> str:
        return self.url_for("/")

    def url_for(self, vhost: str) -> str:
        path = "" if vhost == "/" else quote(vhost, safe="")
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{path}"

    @property
    def dir(self) -> Path | None:
        """Its directory; None before the first start and once closed."""
        return self._home.dir

    @property
    def log_path(self) -> Path:
        return self._home.log_path

    @property
    def running(self) -> bool:
        """The OS process is alive (the ``rabbit`` app may still be stopped)."""
        return self._left.process is not None and self._left.process.poll() is None

    # -- life -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the OS process (over the same data when started before) and wait until the
        broker accepts connections; stopped again when it does not."""
        if self.running:
            return self
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start the OS process, in a session of its own and tethered (it stops when its owner
        dies: ``tether.py``), and return at once."""
        home, env = self._home.create(), self._home.env()
        if not self._reaper.alive:  # started again after a close
            self._reaper = weakref.finalize(self, self._left.clear)
        (home / "node.pid").unlink(missing_ok=True)
        argv = tethered([str(self.scripts / "rabbitmq-server")], env)
        self._began = time.monotonic()
        with open(home / "stdout.log", "ab") as out:
            self._left.process = on_lasting_thread(lambda: subprocess.Popen(
                argv, env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True))

    def wait_ready(self) -> None:
        """Until the node accepts connections and says it booted (``rabbitmqctl
        await_startup``); ``NodeError`` when it exits first or ``start_timeout`` passes."""
        deadline, failure = self._began + self.start_timeout, ""
        while True:
            process = self._left.process
            if process is None or process.poll() is not None:
                code = process.returncode if process else None
                raise NodeError(f"{self.name} exited with {code} while starting" + self.tail())
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name} did not start within {self.start_timeout:g} s"
                                f"{failure}" + self.tail())
            if listening(self.amqp_port):  # cheap; then the node's own word
                left = max(1.0, deadline - time.monotonic())
                out: list[str] = []
                if self.tool("rabbitmqctl", "await_startup", "--timeout", str(int(left)),
                             timeout=left + 5, check=False, output=out, errors=out) == 0:
                    self.start_seconds.append(time.monotonic() - self._began)
                    return
                failure = f": {out[-1].strip()[:500]}"  # a port that answered too early
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the OS process, gracefully first; the data stays for the next ``start()``."""
        process, vm = self._left.process, self._home.vm_pid()
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the script stops the broker properly
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        self.kill()  # stragglers of the group, or all of it when still running
        wait_gone(vm)

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group, no shutdown at all. Returns once the
        Erlang VM is gone (its ports closed). On RabbitMQ 3.10 a quorum queue declared seconds
        before never comes back ("pre init for 0 registered servers": Ra saves its registry
        lazily); a clean stop saves it."""
        process, vm, self._left.process = self._left.process, self._home.vm_pid(), None
        if process is None:
            return
        kill_group(process.pid)
        process.wait(10)
        wait_gone(vm)

    def close(self) -> None:
        """Stop the node and remove its directory (data, log, config)."""
        try:
            self.stop()
        finally:
            self._reaper()  # the directory (and the process, if the stop was interrupted)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- commands -------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl -n <this node> -q <args>``: its output, or ``NodeError``."""
        out: list[str] = []
        self.tool("rabbitmqctl", *args, timeout=timeout, output=out)
        return out[0]

    def tool(self, tool: str, *args: str, timeout: float = 60.0, check: bool = True,
             output: list[str] | None = None, errors: list[str] | None = None) -> int:
        """Run ``tool -n <this node> -q <args>`` (its own session, killed whole when late or
        interrupted); its exit code, or ``NodeError`` when ``check`` and it failed."""
        command = [str(self.scripts / tool), "-n", self.name, "-q", *args]
        done = run(command, env=self._home.env(), cwd=self._home.path, timeout=timeout)
        if done is None:
            raise NodeError(f"{tool} {' '.join(args)}: no answer within {timeout:g} s"
                            + self.tail())
        if check and done.returncode != 0:
            raise NodeError(f"{tool} {' '.join(args)} exited with {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()[-2000:]}" + self.tail())
        if output is not None:
            output.append(done.stdout)
        if errors is not None:
            errors.append(done.stderr)
        return done.returncode

    def tail(self, lines: int = 40) -> str:
        """The last lines of the node's log and of its console output."""
        return self._home.tail(lines)


class _Remains:
    """A node's OS process (while it runs) and home: its finalizer's, not holding the node."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None

    def clear(self) -> None:
        """SIGKILL to the group, the Erlang VM waited for (bounded), the directory removed."""
        process, vm, self.process = self.process, self.home.vm_pid(), None
        if process is not None:
            kill_group(process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            wait_gone(vm, timeout=10)
        self.home.remove()

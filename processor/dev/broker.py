"""A RabbitMQ of our own, for ``zenoti-events up`` and the tests that break a broker.

``PrivateNode`` starts the installed ``rabbitmq-server`` as a node of its own: its own name,
AMQP and distribution ports, data, log, config, enabled-plugins file and Erlang cookie, all in a
temporary directory that ``close()`` removes. Every command names it (``rabbitmqctl -n``) and
carries its cookie, which no other node has: nothing done to it reaches the broker a developer
runs (``rabbit@<host>`` on 5672). It and its commands run in sessions of their own, so a Ctrl-C
in the terminal reaches only the Python process, which stops them in order.

    with PrivateNode(scripts=find_scripts()) as node:   # started; stopped and removed on exit
        node.url                                        # amqp://guest:guest@127.0.0.1:<port>/

``answers(url)`` is the quick check that something listens at an AMQP URL's host and port;
``rabbitmq_container()`` is the other way to a broker, Docker through testcontainers.
``tests/rabbit.py`` builds its faults (restarts, crashes, alarms) on ``PrivateNode``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

_PLACES = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin",
           "/usr/local/opt/rabbitmq/sbin")
_CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users.guest = true
log.file.level = info
log.console = false
"""
_WELL_KNOWN = {4369, 5671, 5672, 15672, 25672, 35672, 6379, 8080, 8090, 9100}


class NodeError(RuntimeError):
    """The private node did not do what it was asked; the message ends with its log's tail."""


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


def answers(url: str, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections at the host and port of AMQP ``url``."""
    parts = urlsplit(url)
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        return False
    return listening(port, parts.hostname or "localhost", timeout)


def listening(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Something listens on ``host:port``. Not a TCP self-connection: a port of the ephemeral
    range with no listener can be "accepted" by the connecting socket itself."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as probe:
            return bool(probe.getsockname() != probe.getpeername())
    except OSError:
        return False


def quiet_port() -> int:
    """A free port below the ephemeral range. A node's ports must stay free while it is down
    (a restart): in the ephemeral range anyone binding port 0 may take them meanwhile."""
    low = _ephemeral_low()
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randrange(max(1024, low - 12000), low)
        if port not in _WELL_KNOWN and _bindable(port):
            return port
    raise NodeError("no free port below the ephemeral range")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # IANA's, as macOS and the BSDs use


class PrivateNode:
    """One RabbitMQ node of its owner alone; see the module's docstring.

    ``start()`` is ``launch()`` (the OS process, at once) then ``wait_ready()`` (bounded by
    ``start_timeout``; ``NodeError`` with the log's tail if the node fails or is late).
    ``close()`` stops it (SIGTERM, SIGKILL of its process group as the last resort) and removes
    its directory; a node never closed is killed at interpreter exit all the same.
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
        self.extra_config = config
        self.start_timeout = start_timeout
        self.start_seconds: list[float] = []
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: weakref.finalize[Any, Any] | None = None
        self._began = 0.0

    @property
    def url(self) -> str:
        return self.url_for("/")

    def url_for(self, vhost: str) -> str:
        path = "" if vhost == "/" else quote(vhost, safe="")
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{path}"

    @property
    def log_path(self) -> Path:
        return self._home / "node.log"

    @property
    def running(self) -> bool:
        """The OS process is alive (the ``rabbit`` app may still be stopped)."""
        return self._process is not None and self._process.poll() is None

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
        """Start the OS process, in a session of its own, and return at once."""
        self._prepare()
        (self._home / "node.pid").unlink(missing_ok=True)
        self._began = time.monotonic()
        with open(self._home / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                [str(self.scripts / "rabbitmq-server")], env=self._env(), cwd=self._home,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._reaper = weakref.finalize(self, _kill_group, self._process.pid)

    def wait_ready(self) -> None:
        """Until the node accepts connections and says it booted (``rabbitmqctl
        await_startup``); ``NodeError`` when it exits first or ``start_timeout`` passes."""
        deadline, failure = self._began + self.start_timeout, ""
        while True:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
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
        process, vm = self._process, self._vm_pid()
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the script stops the broker properly
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        self.kill()  # stragglers of the group, or all of it when still running
        _wait_gone(vm)

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group, no shutdown at all. Returns once the
        Erlang VM is gone (its ports closed). On RabbitMQ 3.10 a quorum queue declared seconds
        before never comes back ("pre init for 0 registered servers": Ra saves its registry
        lazily); a clean stop saves it."""
        process, vm, self._process = self._process, self._vm_pid(), None
        if process is None:
            return
        _kill_group(process.pid)
        process.wait(10)
        _wait_gone(vm)
        if self._reaper is not None:
            self._reaper.detach()

    def close(self) -> None:
        """Stop the node and remove its directory (data, log, config)."""
        try:
            self.stop()
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

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
        done = _run(command, env=self._env(), cwd=self._home, timeout=timeout)
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
        parts = []
        for path in (self._home / "stdout.log", self.log_path):
            if self.dir is not None and path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {path.name} of {self.name} ---\n" + "\n".join(text))
        return "".join(parts)

    # -- inside ---------------------------------------------------------------------------

    def _vm_pid(self) -> int | None:
        """The Erlang VM's process id from the pid file (the started process is a script)."""
        try:
            return int((self._home / "node.pid").read_text().strip())
        except (NodeError, OSError, ValueError):
            return None

    @property
    def _home(self) -> Path:
        if self.dir is None:
            raise NodeError("the node was closed")
        return self.dir

    def _prepare(self) -> None:
        if self.dir is not None:
            return
        self.dir = Path(tempfile.mkdtemp(prefix="zenoti-rabbit-"))
        config = _CONFIG.format(port=self.amqp_port) + self.extra_config
        (self.dir / "rabbitmq.conf").write_text(config)
        (self.dir / "enabled_plugins").write_text("[].\n")  # no plugin: starts faster
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the system's (its NODENAME...)
        cookie = self.dir / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)

    def _env(self) -> dict[str, str]:
        home = str(self._home)
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            "HOME": home,  # its cookie; the user's home is never written
            "RABBITMQ_CONF_ENV_FILE": f"{home}/rabbitmq-env.conf",
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": f"{home}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{home}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{home}/enabled_plugins",
            "RABBITMQ_MNESIA_BASE": f"{home}/mnesia",
            "RABBITMQ_LOG_BASE": home,
            "RABBITMQ_LOGS": str(self.log_path),
            "RABBITMQ_PID_FILE": f"{home}/node.pid",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # The CLI's own distribution port: any free one, not the 35672-35682 all share.
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_CRASH_DUMP": f"{home}/erl_crash.dump",
        }


def _run(command: list[str], *, env: dict[str, str], cwd: Path,
         timeout: float) -> subprocess.CompletedProcess[str] | None:
    """``subprocess.run`` in a session of its own; None when late. Late or interrupted, its
    whole process group is killed (``run`` kills only the process it started)."""
    with subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            return None
        except BaseException:
            _kill_group(process.pid)
            raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _wait_gone(pid: int | None, timeout: float = 30.0) -> None:
    """Until process ``pid`` is gone (or a zombie: dead, its parent, the script, was killed)."""
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


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# -- Docker ---------------------------------------------------------------------------------


def docker_answers(timeout: float = 20.0) -> bool:
    """The ``docker`` command is installed and its engine answers."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def rabbitmq_container(image: str = "rabbitmq:3.13") -> Any | None:
    """A testcontainers ``RabbitMqContainer`` (not started), or None when testcontainers (a
    dev dependency) is not installed. Imported here only: ``up`` pays for it when used."""
    for module in ("testcontainers.community.rabbitmq", "testcontainers.rabbitmq"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module).RabbitMqContainer(image)
    return None


def container_url(container: Any) -> str:
    """The AMQP URL of a started ``RabbitMqContainer``."""
    host, port = container.get_container_host_ip(), container.get_exposed_port(container.port)
    return f"amqp://{container.username}:{container.password}@{host}:{port}/"

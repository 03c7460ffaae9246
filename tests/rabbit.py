"""Private RabbitMQ nodes, for the tests that break a broker.

A test that stops, restarts or alarms a broker must never do it to the broker a developer runs
for other work (``rabbit@<host>`` on 5672). ``PrivateNode`` starts the installed
``rabbitmq-server`` as a node of its own: its own name, AMQP and distribution ports, data, log,
config, enabled-plugins file and Erlang cookie, all in a temporary directory removed at the end.
Every command names it (``rabbitmqctl -n``) and carries its cookie, which no other node has: a
mistaken command cannot reach the shared broker.

    with PrivateNode() as node:              # started; stopped and removed on exit
        node.url                             # amqp://guest:guest@127.0.0.1:<port>/
        node.stop_app(); node.start_app()    # the broker goes away and comes back
        node.restart(hard=True)              # a new OS process over the same data
        node.kill(); node.start()            # a crash (SIGKILL), then a start over the same data
        node.alarm_memory(); node.clear_alarms()

For a cluster (a later issue), nodes made with one ``cookie`` join each other:
``b.cluster_with(a)``.

``SharedBrokerWatch`` is the other half: it notices when a test run touched the shared broker
(restarted it, stopped its app, closed every connection, alarmed it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aio_pika
from aio_pika.abc import AbstractConnection

SCRIPTS_ENV = "ZENOTI_TEST_RABBITMQ_SCRIPTS"
"""A directory holding the ``rabbitmq-server`` and ``rabbitmqctl`` scripts, when not found."""

_PLACES = ("/usr/lib/rabbitmq/bin", "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin",
           "/usr/local/opt/rabbitmq/sbin")
_CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users.guest = true
log.file.level = info
log.console = false
"""
_LIMITS = ("set_vm_memory_high_watermark", "set_disk_free_limit")
MEMORY_DEFAULT = "0.4"
DISK_DEFAULT = "50MB"


class NodeError(RuntimeError):
    """The private node did not do what it was asked; the message ends with its log's tail."""


def find_scripts() -> Path | None:
    """The directory of the real ``rabbitmq-server`` scripts, or None when not installed.

    Not a distribution's wrapper (Debian's ``/usr/sbin/rabbitmqctl`` switches to the
    ``rabbitmq`` user and its files): the directory must also hold ``rabbitmq-env``."""
    candidates = [Path(p) for p in filter(None, [os.environ.get(SCRIPTS_ENV)])]
    found = shutil.which("rabbitmq-server",
                         path=os.pathsep.join([os.environ.get("PATH", ""), *_PLACES]))
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in _PLACES]
    for directory in candidates:
        if all((directory / n).is_file() for n in ("rabbitmq-server", "rabbitmqctl",
                                                    "rabbitmq-env")):
            return directory
    return None


def quiet_port() -> int:
    """A free port below the ephemeral range. A node's ports must stay free while it is down
    (a restart): in the ephemeral range anyone binding port 0 (a CLI tool, a test server) may
    take them meanwhile."""
    low = _ephemeral_low()
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randrange(max(1024, low - 12000), low)
        if port in _WELL_KNOWN:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise NodeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # IANA's, as macOS and the BSDs use


_WELL_KNOWN = {4369, 5671, 5672, 15672, 25672, 35672, 6379, 8080, 8090, 9100}


class PrivateNode:
    """One RabbitMQ node of this test run alone; see the module's docstring.

    ``start()`` waits for ``await_startup`` (bounded; ``NodeError`` with the log's tail if the
    node fails or is late); ``close()`` stops it (SIGTERM, SIGKILL of its process group as the
    last resort) and removes its directory. ``start_seconds`` keeps every start's duration.
    """

    def __init__(self, *, cookie: str | None = None, config: str = "",
                 scripts: Path | None = None, start_timeout: float = 90.0,
                 prefix: str = "zenoti-test") -> None:
        found = scripts or find_scripts()
        if found is None:
            raise NodeError(f"rabbitmq-server is not installed (or set {SCRIPTS_ENV})")
        self.scripts = found
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
        self._limits_changed = False

    # -- where it is ----------------------------------------------------------------------

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

    def status(self) -> dict[str, Any]:
        """``rabbitmqctl status`` as JSON."""
        found: dict[str, Any] = json.loads(self.ctl("status", "--formatter", "json"))
        return found

    def os_pid(self) -> int:
        """The Erlang VM's process id, as the node reports it."""
        return int(self.ctl("eval", "list_to_integer(os:getpid()).").strip())

    # -- life -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the OS process (over the same data when started before) and wait until the
        broker accepts connections."""
        if self.running:
            return self
        self._prepare()
        (self._home / "node.pid").unlink(missing_ok=True)
        began = time.monotonic()
        with open(self._home / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                [str(self.scripts / "rabbitmq-server")], env=self._env(), cwd=self._home,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._reaper = weakref.finalize(self, _kill_group, self._process.pid)
        try:
            self._await_startup(began + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds.append(time.monotonic() - began)
        return self

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

    # -- faults ---------------------------------------------------------------------------

    def stop_app(self) -> None:
        """The broker goes away (connections refused), the VM stays."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Returns once the broker runs again (``start_app`` waits for it)."""
        self.ctl("start_app", timeout=self.start_timeout)

    def restart(self, *, hard: bool = False) -> None:
        """``stop_app`` and ``start_app``; with ``hard``, a new OS process over the same data."""
        if hard:
            self.stop()
            self.start()
        else:
            self.stop_app()
            self.start_app()

    def alarm_memory(self) -> None:
        """Raise the memory alarm: every publishing connection is blocked until cleared."""
        self.ctl("set_vm_memory_high_watermark", "0.000001")
        self._wait_alarms(True)

    def alarm_disk(self) -> None:
        """Raise the disk alarm (a free-space limit no disk has)."""
        self.ctl("set_disk_free_limit", "1000000GB")
        self._wait_alarms(True)

    def clear_alarms(self) -> None:
        self.ctl("set_vm_memory_high_watermark", MEMORY_DEFAULT)
        self.ctl("set_disk_free_limit", DISK_DEFAULT)
        self._wait_alarms(False)
        self._limits_changed = False

    def alarms(self) -> bool:
        """Whether an alarm is raised on this node."""
        return self._tool("rabbitmq-diagnostics", "check_local_alarms", check=False) != 0

    def close_connections(self, vhost: str | None = None, reason: str = "test") -> None:
        """Close every client connection (of ``vhost`` only, when given)."""
        where = ["-p", vhost] if vhost else ["--global"]
        self.ctl("close_all_connections", *where, reason)

    def heal(self) -> None:
        """Make it a healthy broker again, whatever a test left: started, app running, memory
        and disk limits as they were (no alarm). Cheap when nothing was broken: no command
        runs then (a CLI command costs half a second, several on a loaded machine)."""
        if not self.running:
            self.start()
        if not _accepts(self.amqp_port):
            self.start_app()
        if self._limits_changed:
            self.clear_alarms()

    # -- contents -------------------------------------------------------------------------

    def add_vhost(self, vhost: str) -> str:
        """Make ``vhost`` with every permission for guest; return its URL."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return self.url_for(vhost)

    def delete_vhost(self, vhost: str) -> None:
        self.ctl("delete_vhost", vhost)

    def cluster_with(self, other: PrivateNode) -> None:
        """Join ``other``'s cluster (this node's data is reset). Both need the same cookie."""
        if other.cookie != self.cookie:
            raise NodeError("nodes of one cluster need one cookie: PrivateNode(cookie=...)")
        self.stop_app()
        self.ctl("reset")
        self.ctl("join_cluster", other.name)
        self.start_app()

    # -- commands -------------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl -n <this node> -q <args>``: its output, or ``NodeError``."""
        if args and args[0] in _LIMITS:
            self._limits_changed = True
        out: list[str] = []
        self._tool("rabbitmqctl", *args, timeout=timeout, output=out)
        return out[0]

    def diagnostics(self, *args: str, timeout: float = 60.0) -> str:
        out: list[str] = []
        self._tool("rabbitmq-diagnostics", *args, timeout=timeout, output=out)
        return out[0]

    def _tool(self, tool: str, *args: str, timeout: float = 60.0, check: bool = True,
              output: list[str] | None = None, errors: list[str] | None = None) -> int:
        command = [str(self.scripts / tool), "-n", self.name, "-q", *args]
        try:
            done = subprocess.run(command, env=self._env(), cwd=self._home, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NodeError(f"{tool} {' '.join(args)}: no answer within {timeout:g} s"
                            + self.tail()) from exc
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

    def _await_startup(self, deadline: float) -> None:
        # Wait for the listener (cheap), then let the node say it booted; a port that
        # answered too early (not the node) means: wait on.
        failure = ""
        while True:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process else None
                raise NodeError(f"{self.name} exited with {code} while starting" + self.tail())
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name} did not start within {self.start_timeout:g} s"
                                f"{failure}" + self.tail())
            if _accepts(self.amqp_port):
                left = max(1.0, deadline - time.monotonic())
                out: list[str] = []
                if self._tool("rabbitmqctl", "await_startup", "--timeout", str(int(left)),
                              timeout=left + 5, check=False, output=out, errors=out) == 0:
                    return
                failure = f": {out[-1].strip()[:500]}"
            time.sleep(0.05)

    def _wait_alarms(self, raised: bool, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alarms() != raised:
            if time.monotonic() > deadline:
                raise NodeError(f"alarm {'not raised' if raised else 'not cleared'} within "
                                f"{timeout:g} s" + self.tail())
            time.sleep(0.2)


def _accepts(port: int) -> bool:
    """Something listens on ``port``. Not a TCP self-connection: a port of the ephemeral range
    with no listener can be "accepted" by the connecting socket itself."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
            return bool(probe.getsockname() != probe.getpeername())
    except OSError:
        return False


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


class SharedBrokerWatch:
    """Notices that a test run touched the shared broker: its OS process, its app (a sentinel
    connection, closed by ``stop_app``, a restart or ``close_all_connections --global``), its
    alarms and its memory and disk limits. ``None`` from ``take`` when there is no shared
    broker to watch (not running, or ``rabbitmqctl`` cannot ask it)."""

    KEYS = ("pid", "alarms", "vm_memory_high_watermark_setting", "disk_free_limit")

    def __init__(self, url: str, before: dict[str, Any],
                 status: Callable[[], dict[str, Any] | None]) -> None:
        self.url = url
        self.before = before
        self._status = status
        self.closed: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                         name="shared-broker-watch")
        self._connection: AbstractConnection | None = None
        self._closing = False

    @classmethod
    def take(cls, url: str = "amqp://guest:guest@127.0.0.1:5672/",
             status: Callable[[], dict[str, Any] | None] | None = None,
             ) -> SharedBrokerWatch | None:
        """Start watching (the shared broker unless told another ``url`` and ``status``)."""
        ask = status or shared_status
        before = ask()
        if before is None:
            return None
        watch = cls(url, before, ask)
        watch._thread.start()
        # Without a sentinel (no "/" for guest, say), the status alone.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(watch._connect(), watch._loop).result(15)
        return watch

    def changes(self) -> list[str]:
        """What differs since ``take``; also ends the watch."""
        after = self._status()
        found = [] if after is not None else ["the broker no longer answers"]
        if after is not None:
            found += [f"{k}: {self.before.get(k)!r} -> {after.get(k)!r}" for k in self.KEYS
                      if self.before.get(k) != after.get(k)]
        found += [f"sentinel connection closed: {reason}" for reason in self.closed]
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        return found

    async def _connect(self) -> None:
        connection = await aio_pika.connect(
            self.url, timeout=5, client_properties={"connection_name": "zenoti-events tests: "
                                                    "shared broker watch"})
        connection.close_callbacks.add(self._on_close)
        self._connection = connection

    def _on_close(self, _: object, error: BaseException | None = None) -> None:
        if not self._closing:
            self.closed.append(repr(error))

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._closing = True
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()


def shared_status() -> dict[str, Any] | None:
    """``rabbitmqctl status`` of the shared (default) node, or None."""
    if not shutil.which("rabbitmqctl") or not _accepts(5672):
        return None
    try:
        done = subprocess.run(["rabbitmqctl", "-q", "status", "--formatter", "json"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    try:
        status: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return None
    return status

"""Private RabbitMQ nodes, for the tests that break a broker.

A test that stops, restarts or alarms a broker must never do it to the broker a developer runs
for other work (``rabbit@<host>`` on 5672). ``PrivateNode`` is ``processor.dev.node``'s node
(the one ``zenoti-events up`` starts when no broker answers: the installed ``rabbitmq-server``
with its own name, ports, data and Erlang cookie in a temporary directory removed at the end),
plus the faults. Every command names it (``rabbitmqctl -n``) and carries its cookie, which no
other node has: a mistaken command cannot reach the shared broker.

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
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

from processor.dev import node as devnode
from processor.dev.node import NodeError
from processor.dev.ports import listening, quiet_port

__all__ = ["DISK_DEFAULT", "MEMORY_DEFAULT", "SCRIPTS_ENV", "NodeError", "PrivateNode",
           "SharedBrokerWatch", "find_scripts", "quiet_port", "shared_status"]

SCRIPTS_ENV = "ZENOTI_TEST_RABBITMQ_SCRIPTS"
"""A directory holding the ``rabbitmq-server`` and ``rabbitmqctl`` scripts, when not found."""

_LIMITS = ("set_vm_memory_high_watermark", "set_disk_free_limit")
MEMORY_DEFAULT = "0.4"
DISK_DEFAULT = "50MB"


def find_scripts() -> Path | None:
    """The directory of the real ``rabbitmq-server`` scripts (``$ZENOTI_TEST_RABBITMQ_SCRIPTS``
    first), or None when not installed."""
    return devnode.find_scripts(os.environ.get(SCRIPTS_ENV))


class PrivateNode(devnode.PrivateNode):
    """One RabbitMQ node of this test run alone, with faults; see the module's docstring.

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
        super().__init__(scripts=found, cookie=cookie, config=config,
                         start_timeout=start_timeout, prefix=prefix)
        self._limits_changed = False

    def status(self) -> dict[str, Any]:
        """``rabbitmqctl status`` as JSON."""
        found: dict[str, Any] = json.loads(self.ctl("status", "--formatter", "json"))
        return found

    def os_pid(self) -> int:
        """The Erlang VM's process id, as the node reports it."""
        return int(self.ctl("eval", "list_to_integer(os:getpid()).").strip())

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
        return self.tool("rabbitmq-diagnostics", "check_local_alarms", check=False) != 0

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
        if not listening(self.amqp_port):
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
        return super().ctl(*args, timeout=timeout)

    def diagnostics(self, *args: str, timeout: float = 60.0) -> str:
        out: list[str] = []
        self.tool("rabbitmq-diagnostics", *args, timeout=timeout, output=out)
        return out[0]

    def _wait_alarms(self, raised: bool, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alarms() != raised:
            if time.monotonic() > deadline:
                raise NodeError(f"alarm {'not raised' if raised else 'not cleared'} within "
                                f"{timeout:g} s" + self.tail())
            time.sleep(0.2)


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
    if not shutil.which("rabbitmqctl") or not listening(5672):
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

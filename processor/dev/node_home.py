"""Where a private RabbitMQ node lives: one temporary directory, and the environment that keeps
the ``rabbitmq-server`` scripts inside it.

``NodeHome`` holds all of one node: its config (the AMQP listener on 127.0.0.1 alone, guest
from the loopback only, plus the node's extra lines), an enabled-plugins file (none: it starts
faster) and an env file (empty: not the system's, with its NODENAME), its Erlang cookie (mode
0400), data (``mnesia``), logs and pid file. ``env()`` points the scripts at it, at the node's
name and its ports, with nothing of ``RABBITMQ_*`` or ``ERL_*`` inherited; ``HOME`` is the
directory (the cookie is read there: the user's home is never written).

``create()`` makes it (``mkdtemp``: readable by its owner alone), once; ``remove()`` removes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

_CONFIG = """\
listeners.tcp.1 = 127.0.0.1:{port}
loopback_users.guest = true
log.file.level = info
log.console = false
"""


class NodeError(RuntimeError):
    """The private node did not do what it was asked; the message ends with its log's tail."""


@dataclass
class NodeHome:
    """The directory of node ``name``; see the module's docstring. ``dir``: None until
    created, and again once removed."""

    name: str
    cookie: str
    amqp_port: int
    dist_port: int
    extra_config: str = ""
    dir: Path | None = None

    @property
    def path(self) -> Path:
        """The directory; ``NodeError`` when there is none (never created, or removed)."""
        if self.dir is None:
            raise NodeError("the node was closed")
        return self.dir

    @property
    def log_path(self) -> Path:
        return self.path / "node.log"

    def create(self) -> Path:
        """Make the directory and its files, unless made already."""
        if self.dir is not None:
            return self.dir
        self.dir = home = Path(tempfile.mkdtemp(prefix="zenoti-rabbit-"))
        (home / "rabbitmq.conf").write_text(_CONFIG.format(port=self.amqp_port)
                                            + self.extra_config)
        (home / "enabled_plugins").write_text("[].\n")
        (home / "rabbitmq-env.conf").write_text("")
        cookie = home / ".erlang.cookie"
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        return home

    def remove(self) -> None:
        """Remove the directory (data, logs, config), if there is one."""
        home, self.dir = self.dir, None
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)

    def vm_pid(self) -> int | None:
        """The Erlang VM's process id from the pid file (the started process is a script)."""
        try:
            return int((self.path / "node.pid").read_text().strip())
        except (NodeError, OSError, ValueError):
            return None

    def tail(self, lines: int = 40) -> str:
        """The last lines of the node's log and of its console output; "" without a home."""
        if self.dir is None:
            return ""
        parts = []
        for path in (self.dir / "stdout.log", self.dir / "node.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {path.name} of {self.name} ---\n" + "\n".join(text))
        return "".join(parts)

    def env(self) -> dict[str, str]:
        """This process's environment, but the scripts' every place and port is here."""
        home = str(self.path)
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
            "RABBITMQ_LOGS": f"{home}/node.log",
            "RABBITMQ_PID_FILE": f"{home}/node.pid",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # The CLI's own distribution port: any free one, not the 35672-35682 all share.
            "RABBITMQ_CTL_DIST_PORT_MIN": "0",
            "RABBITMQ_CTL_DIST_PORT_MAX": "0",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_CRASH_DUMP": f"{home}/erl_crash.dump",
        }

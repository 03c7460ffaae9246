"""What ``zenoti-events up`` runs on: a RabbitMQ broker, and Redis when it can have one.

The broker, in this order: whatever answers at ``AMQP_URL`` (a TCP check of its host and
port); else a private node of the installed ``rabbitmq-server`` (``processor/dev/node.py``);
else RabbitMQ in Docker through testcontainers (``processor/dev/container.py``); else
``NoBroker``, one line on how to get one.

Redis the same way: whatever answers at ``REDIS_URL`` when it is set; else a private
``redis-server`` when installed (its own port on 127.0.0.1, nothing saved, its directory
removed), with a random password (``requirepass``, in a config file of its 0700 directory:
never on a command line, which every local user can read); else none, and each process keeps
its API budget and de-duplication to itself.

What is started here is stopped by the ``ExitStack`` given, in the reverse order. A URL is
said without its user and password (``shown``); the ones returned carry them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from processor.broker.connect import parse
from processor.dev import container as devcontainer
from processor.dev import node as devnode
from processor.dev import ports
from processor.dev.launcher import Children, signals_held
from processor.errors import ConfigError

Say = Callable[[str], None]
NO_BROKER = ("no RabbitMQ answers at {where}, rabbitmq-server is not installed and Docker does "
             "not answer: install one (e.g. apt-get install rabbitmq-server, brew install "
             "rabbitmq) or set ZENOTI_EVENTS_AMQP_URL")


class NoBroker(Exception):
    """No broker answers and ``up`` cannot start one."""


def broker(url: str, started: contextlib.ExitStack, say: Say) -> str:
    """The URL of a broker that answers, started here when need be."""
    where = ", ".join(_where(one, 5671 if one.startswith("amqps:") else 5672)
                      for one in _listed(url))
    if ports.answers(url):
        say(f"broker {where} (ZENOTI_EVENTS_AMQP_URL, or the default)")
        return url
    scripts = devnode.find_scripts()
    if scripts is not None:
        node = devnode.PrivateNode(scripts=scripts, prefix="zenoti-up", start_timeout=60)
        started.callback(node.close)
        say(f"nothing answers at {where}: starting a private RabbitMQ node {node.name}")
        with signals_held():  # recorded before a Ctrl-C can interrupt
            node.launch()
        node.wait_ready()
        say(f"broker {shown(node.url)}: private node {node.name}, removed on exit")
        return node.url
    if devcontainer.docker_answers() and (container := devcontainer.rabbitmq_container()):
        started.callback(container.stop)
        say(f"nothing answers at {where}: starting RabbitMQ in Docker (testcontainers)")
        try:
            container.start()
        except Exception as exc:  # Docker's own errors, of every kind
            raise RuntimeError(f"RabbitMQ in Docker did not start: {exc}") from exc
        found = devcontainer.container_url(container)
        say(f"broker {shown(found)}: a container, removed on exit")
        return found
    raise NoBroker(NO_BROKER.format(where=where))


def redis(url: str | None, started: contextlib.ExitStack, say: Say) -> str | None:
    """The URL of a Redis that answers, started here when need be; None without one."""
    if url and _answers(url):
        say(f"Redis {_where(url, 6379)} (ZENOTI_EVENTS_REDIS_URL)")
        return url
    server = shutil.which("redis-server")
    if server is None:
        where = f"nothing answers at {_where(url, 6379)} and " if url else ""
        say(f"no Redis ({where}redis-server is not installed): each process keeps its own API "
            "budget and de-duplication")
        return None
    port, password = ports.quiet_port(), secrets.token_urlsafe(32)
    home = Path(started.enter_context(tempfile.TemporaryDirectory(prefix="zenoti-redis-")))
    config = _secret_file(home / "redis.conf", f"requirepass {password}\n")
    children = started.enter_context(Children(output="capture", stop_timeout=10))
    children.start("redis-server", [server, str(config), "--bind", "127.0.0.1", "--port",
                                    str(port), "--save", "", "--appendonly", "no",
                                    "--dir", str(home)],
                   ready=lambda: ports.listening(port))
    say(f"Redis 127.0.0.1:{port}: a private redis-server with a password of its own, "
        "removed on exit")
    return f"redis://:{password}@127.0.0.1:{port}/0"


def _secret_file(path: Path, text: str) -> Path:
    """``path`` made new with ``text``, readable by its owner alone."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    return path


def shown(url: str) -> str:
    """``url`` without its user and password: what may be said or logged."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _listed(urls: str) -> list[str]:
    """The URLs of an ``AMQP_URL`` list; a malformed one as it is (said, never connected to)."""
    try:
        return list(parse(urls))
    except ConfigError:
        return [urls]


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port or 6379
    except ValueError:
        return False
    return ports.listening(port, parts.hostname or "localhost", timeout=1.0)


def _where(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    with contextlib.suppress(ValueError):  # a port that is not a number
        return f"{parts.hostname}:{parts.port or default_port}"
    return "the URL set"

"""RabbitMQ in Docker, through testcontainers: the last way ``up`` and the tests have to a broker.

    if docker_answers() and (container := rabbitmq_container()) is not None:
        with container:                                  # started; removed on leaving
            connect(container_url(container))            # credentials inside: never print it
            print(container_where(container))            # localhost:<port>: this one can be

The image, unchanged, accepts ``guest`` from anywhere, so the container is no-one else's: its
AMQP port is published on 127.0.0.1 alone (a port Docker picks; never 0.0.0.0, where every
host on the network could reach it), and its user and password are random, made for it. That
needs a Docker engine on this machine: one reached through a remote ``DOCKER_HOST``, or from
inside another container, cannot be reached on the loopback where the port is published.
testcontainers is a dev dependency, imported when a container is asked for: ``up`` pays for it
only then.
"""

from __future__ import annotations

import importlib
import secrets
import shutil
import subprocess
from typing import Any
from urllib.parse import quote

LOOPBACK = "127.0.0.1"
_MODULES = ("testcontainers.community.rabbitmq", "testcontainers.rabbitmq")


def docker_answers(timeout: float = 20.0) -> bool:
    """The ``docker`` command is installed and its engine answers."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True,
                              timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def rabbitmq_container(image: str = "rabbitmq:4.2.9") -> Any | None:
    """A testcontainers ``RabbitMqContainer``, not started: published on the loopback alone,
    with a random user and password (see the module's docstring). None when testcontainers is
    not installed."""
    kind = _container_class()
    if kind is None:
        return None
    container = kind(image, username=f"zenoti-{secrets.token_hex(4)}",
                     password=secrets.token_urlsafe(24))
    # docker-py's form for "this host address, any port"; testcontainers' with_bind_ports
    # takes a port alone
    container.ports[str(container.port)] = (LOOPBACK, None)
    return container


def container_url(container: Any) -> str:
    """The AMQP URL of a started container, its credentials inside: for a client, not a log."""
    user, password = quote(container.username, safe=""), quote(container.password, safe="")
    return f"amqp://{user}:{password}@{container_where(container)}/"


def container_where(container: Any) -> str:
    """``host:port`` of a started container's AMQP listener: what may be said."""
    host = container.get_container_host_ip()
    return f"{host}:{container.get_exposed_port(container.port)}"


def _container_class() -> Any | None:
    for module in _MODULES:
        try:
            return importlib.import_module(module).RabbitMqContainer
        except ImportError:
            continue
    return None

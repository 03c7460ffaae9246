"""RabbitMQ in Docker, through testcontainers: the last way ``up`` and the tests have to a broker.

    if docker_answers() and (container := rabbitmq_container()) is not None:
        with container:                                  # started; removed on leaving
            connect(container_url(container))

testcontainers is a dev dependency, imported when a container is asked for: ``up`` pays for it
only then.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import subprocess
from typing import Any


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

"""Shared fixtures. Integration tests get a real RabbitMQ this way, in order:

1. ``AMQP_URL`` from the environment, used as given;
2. the local broker (``amqp://guest:guest@127.0.0.1:5672/``), in a fresh virtual host made
   with ``rabbitmqctl`` for this run (so a running dev stack is never disturbed);
3. a RabbitMQ container through testcontainers, where a Docker engine answers.

With none of them: the tests skip locally, and fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

LOCAL = ("127.0.0.1", 5672)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A broker for this test session: its URL and, when local, its virtual host."""
    if url := os.environ.get("AMQP_URL"):
        yield Broker(url, vhost=None)
        return
    if _reachable(*LOCAL) and shutil.which("rabbitmqctl"):
        vhost = f"zenoti-events-test-{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        try:
            yield Broker(f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}", vhost)
        finally:
            _rabbitmqctl("delete_vhost", vhost)
        return
    container = _container()
    if container is None:
        message = "no RabbitMQ: set AMQP_URL, run one on 127.0.0.1:5672, or start Docker"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with container as running:
        host, port = running.get_container_host_ip(), running.get_exposed_port(5672)
        yield Broker(f"amqp://guest:guest@{host}:{port}/", vhost=None)


class Broker:
    """Where the tests' broker is; ``vhost`` is set when this run made its own."""

    def __init__(self, url: str, vhost: str | None) -> None:
        self.url = url
        self.vhost = vhost

    def close_connections(self) -> None:
        """Make the broker drop every client connection of this run (a broker-side failure)."""
        assert self.vhost, "needs the local broker and rabbitmqctl"
        _rabbitmqctl("close_all_connections", "-p", self.vhost, "test: simulated failure")


def _container():  # type: ignore[no-untyped-def]
    if not shutil.which("docker"):
        return None
    if subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode != 0:
        return None
    from testcontainers.rabbitmq import RabbitMqContainer

    return RabbitMqContainer("rabbitmq:3.13")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault tests' figures at the end of the run, pass or fail."""
    from tests.faults.harness import RESULTS

    if not RESULTS:
        return
    terminalreporter.section("fault test figures")
    for figures in RESULTS:
        terminalreporter.write_line(json.dumps(figures.summary()))

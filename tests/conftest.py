"""Shared fixtures. Integration tests get a real RabbitMQ this way, in order:

1. ``AMQP_URL`` from the environment, used as given;
2. the local broker (``amqp://guest:guest@127.0.0.1:5672/``), in a fresh virtual host made
   with ``rabbitmqctl`` for this run (so a running dev stack is never disturbed);
3. a RabbitMQ container through testcontainers, where a Docker engine answers.

With none of them: the tests skip locally, and fail when ``CI`` is set.

Tests that stop, restart or alarm a broker never do it to that one (a developer may be using
it): they take ``private_broker``, on ``private_node``, a RabbitMQ node of this session alone
(``tests/rabbit.py``). It needs ``rabbitmq-server`` installed here: without
it they skip locally and fail under ``CI``. ``shared_broker_untouched`` checks at the end of
the session that the local broker was left alone (same process, app never stopped, no alarm).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import pytest
import structlog

from tests.rabbit import NodeError, PrivateNode, SharedBrokerWatch, find_scripts

if TYPE_CHECKING:
    from testcontainers.rabbitmq import RabbitMqContainer

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
        _missing("no RabbitMQ: set AMQP_URL, run one on 127.0.0.1:5672, or start Docker")
    with container as running:
        host, port = running.get_container_host_ip(), running.get_exposed_port(5672)
        yield Broker(f"amqp://guest:guest@{host}:{port}/", vhost=None)


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Broker:
    """Where the tests' broker is; ``vhost`` is set when this run made its own, ``node`` when
    the broker is this session's private node (then the test may break it)."""

    def __init__(self, url: str, vhost: str | None, node: PrivateNode | None = None) -> None:
        self.url = url
        self.vhost = vhost
        self.node = node

    def close_connections(self) -> None:
        """Make the broker drop every client connection of this run (a broker-side failure)."""
        assert self.vhost, "needs the local broker and rabbitmqctl"
        reason = "test: simulated failure"
        if self.node is not None:
            self.node.close_connections(self.vhost, reason)
        else:
            _rabbitmqctl("close_all_connections", "-p", self.vhost, reason)


@pytest.fixture(scope="session")
def shared_broker_untouched() -> Iterator[None]:
    """Fails the session if the local broker was restarted, its app stopped, every connection
    closed, or an alarm or limit set while it ran. Nothing to watch: nothing checked."""
    watch = SharedBrokerWatch.take()
    yield
    if watch is not None and (changes := watch.changes()):
        pytest.fail(f"the shared broker at 127.0.0.1:5672 was touched: {changes}")


@pytest.fixture(scope="session")
def private_node(request: pytest.FixtureRequest) -> Iterator[PrivateNode]:
    """A RabbitMQ node of this session alone (started at first use, a few seconds), for the
    tests that stop, restart or alarm a broker; stopped and removed at the end."""
    if find_scripts() is None:
        _missing("no rabbitmq-server here: the tests that break a broker start their own node")
    request.getfixturevalue("shared_broker_untouched")  # watched while a node may be broken
    try:
        node = PrivateNode().start()
    except NodeError as exc:
        pytest.fail(f"could not start a private RabbitMQ node: {exc}")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def private_broker(private_node: PrivateNode) -> Iterator[Broker]:
    """The private node (its default virtual host: the node is this session's alone), healthy
    before and after the test (app running, no alarm), whatever the test did to it. Tests
    delete what they declare first, as on the shared broker."""
    private_node.heal()
    try:
        yield Broker(private_node.url, "/", node=private_node)
    finally:
        private_node.heal()


def _container() -> RabbitMqContainer | None:
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


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """A test that runs ``main`` configures logging onto its own captured stderr, closed
    after it: undo that for every test, so no later one logs into a closed file."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)

"""Shared fixtures. Integration tests get a real RabbitMQ as ``zenoti-events up`` finds one:

1. ``AMQP_URL`` from the environment, used as given;
2. the local broker (``amqp://guest:guest@127.0.0.1:5672/``), in a fresh virtual host made
   with ``rabbitmqctl`` for this run (so a running dev stack is never disturbed);
3. else a private node of the installed ``rabbitmq-server`` (``private_node``), in a fresh
   virtual host too;
4. else a RabbitMQ container through testcontainers, where a Docker engine answers.

With none of them: the tests skip locally, and fail when ``CI`` is set (``missing``).
``ZENOTI_TEST_BROKER=private`` (or ``container``) begins the search at that rung.

Tests that stop, restart or alarm a broker never do it to the local one (a developer may be
using it): they take ``private_broker``, on ``private_node``, a RabbitMQ node of this session
alone (``tests/rabbit.py``). It needs ``rabbitmq-server`` installed here: without it they skip
locally and fail under ``CI``. ``shared_broker_untouched`` checks at the end of the session
that the local broker was left alone (same process, app never stopped, no alarm).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import quote

import pytest
import structlog

from processor.dev import container as devcontainer
from processor.dev.ports import answers
from tests.rabbit import NodeError, PrivateNode, SharedBrokerWatch, find_scripts

LOCAL = "amqp://guest:guest@127.0.0.1:5672/"
START = "ZENOTI_TEST_BROKER"
"""``private`` or ``container``: begin the search there (to try a rung while a broker runs)."""


def _rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60)
    return done.stdout


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A broker for this test session (see the module's docstring): its URL and, when this
    run made its own virtual host, that virtual host."""
    start = os.environ.get(START, "")
    if start not in ("", "private", "container"):
        pytest.fail(f"{START}={start!r}: say private or container (or nothing)")
    if not start and (url := os.environ.get("AMQP_URL")):
        yield Broker(url, vhost=None)
    elif not start and answers(LOCAL) and shutil.which("rabbitmqctl"):
        yield from _local_vhost()
    elif start != "container" and find_scripts() is not None:
        yield from _private_vhost(request.getfixturevalue("private_node"))
    elif devcontainer.docker_answers() and (container := devcontainer.rabbitmq_container()):
        with container as running:
            yield Broker(devcontainer.container_url(running), vhost=None)
    else:
        missing("no RabbitMQ: set AMQP_URL, run one on 127.0.0.1:5672, install "
                "rabbitmq-server, or start Docker")


def _local_vhost() -> Iterator[Broker]:
    vhost = f"zenoti-events-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield Broker(f"{LOCAL}{quote(vhost, safe='')}", vhost)
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _private_vhost(node: PrivateNode) -> Iterator[Broker]:
    vhost = f"zenoti-events-test-{uuid.uuid4().hex[:8]}"
    node.heal()
    url = node.add_vhost(vhost)
    try:
        yield Broker(url, vhost, node=node)
    finally:
        with contextlib.suppress(NodeError):  # removed with the node anyway
            node.heal()
            node.delete_vhost(vhost)


def missing(message: str) -> NoReturn:
    """Skip the test for want of ``message``'s tool here; fail it under ``CI``."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Broker:
    """Where the tests' broker is; ``vhost`` is set when this run made its own, ``node`` when
    the broker is this session's private node (``private_broker`` alone may break it)."""

    def __init__(self, url: str, vhost: str | None, node: PrivateNode | None = None) -> None:
        self.url = url
        self.vhost = vhost
        self.node = node

    def ctl(self, *args: str) -> str:
        """``rabbitmqctl -q args`` on this broker's node (the private one, else the local)."""
        assert self.vhost, "needs the local broker and rabbitmqctl, or a private node"
        return self.node.ctl(*args) if self.node is not None else _rabbitmqctl(*args)

    def close_connections(self) -> None:
        """Make the broker drop every client connection of this run (a broker-side failure)."""
        assert self.vhost, "needs the local broker and rabbitmqctl, or a private node"
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
        missing("no rabbitmq-server here: the tests that break a broker start their own node")
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

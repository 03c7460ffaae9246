"""RabbitMQ in Docker (``processor.dev.container``), the last rung of ``up`` and the tests, is
no-one else's: its AMQP port published on 127.0.0.1 alone, a random user and password, and
``up`` never says them. No Docker engine is needed (nor started): testcontainers builds the
container as it would, against a stand-in Docker client that records what would be asked of
the engine; docker-py turns that into the engine's port bindings."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from processor.dev import backing
from processor.dev import container as devcontainer
from processor.dev import node as devnode

docker = pytest.importorskip("docker")
testcontainers = pytest.importorskip("testcontainers.core.container")
config = pytest.importorskip("testcontainers.core.config")


class Asked(Exception):
    """What the container asked the engine to create."""

    def __init__(self, image: str, arguments: dict[str, Any]) -> None:
        super().__init__(image)
        self.arguments = arguments


class StandInDocker:
    """In testcontainers' ``DockerClient``'s place: no engine; ``create`` raises ``Asked``."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def create(self, image: str, **arguments: Any) -> None:
        raise Asked(image, arguments)


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testcontainers, "DockerClient", StandInDocker)
    monkeypatch.setattr(config.testcontainers_config, "ryuk_disabled", True)


def asked_of_the_engine(container: Any) -> dict[str, Any]:
    with pytest.raises(Asked) as asked:
        container.start()
    return asked.value.arguments


@pytest.mark.usefixtures("no_engine")
def test_the_amqp_port_is_published_on_the_loopback_alone() -> None:
    container = devcontainer.rabbitmq_container()
    assert container is not None

    ports = asked_of_the_engine(container)["ports"]

    bindings = docker.types.HostConfig(version="1.44", port_bindings=ports)["PortBindings"]
    assert bindings == {"5672/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}


@pytest.mark.usefixtures("no_engine")
def test_the_user_and_password_are_random_never_guest() -> None:
    made = [devcontainer.rabbitmq_container() for _ in range(2)]
    assert None not in made
    envs = [asked_of_the_engine(container)["environment"] for container in made]

    users = {env["RABBITMQ_DEFAULT_USER"] for env in envs}
    passwords = {env["RABBITMQ_DEFAULT_PASS"] for env in envs}
    assert len(users) == len(passwords) == 2, "one of their own for each container"
    assert "guest" not in users | passwords
    assert all(len(password) >= 32 for password in passwords)
    assert [(c.username, c.password) for c in made if c is not None] == [
        (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]) for env in envs]


class StartedContainer:
    """A started container as ``backing.broker`` sees one."""

    port = 5672
    username = "zenoti-1a2b3c4d"
    password = "s3cr3t-Pa55word_of-the-container"

    def start(self) -> StartedContainer:
        return self

    def stop(self) -> None:
        pass

    def get_container_host_ip(self) -> str:
        return "localhost"

    def get_exposed_port(self, port: int) -> int:
        return 32771


def test_up_says_where_the_container_listens_never_its_credentials(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devnode, "find_scripts", lambda directory=None: None)
    monkeypatch.setattr(devcontainer, "docker_answers", lambda timeout=20.0: True)
    monkeypatch.setattr(devcontainer, "rabbitmq_container", StartedContainer)
    said: list[str] = []

    with contextlib.ExitStack() as started:
        url = backing.broker("amqp://guest:guest@127.0.0.1:9/", started, said.append)

    assert url == f"amqp://zenoti-1a2b3c4d:{StartedContainer.password}@localhost:32771/"
    assert any("localhost:32771" in line for line in said), said
    assert not [line for line in said if StartedContainer.password in line
                or StartedContainer.username in line], said

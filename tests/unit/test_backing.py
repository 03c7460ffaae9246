"""What ``up`` runs on, said in one line: a Redis that does not answer is named, never used."""

from __future__ import annotations

import contextlib
import socket

import pytest

from processor.dev import backing, ports


def test_a_dead_redis_and_no_redis_server_is_said_and_gives_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    dead = ports.quiet_port()  # nothing listens there
    said: list[str] = []
    with contextlib.ExitStack() as started:
        found = backing.redis(f"redis://:secret@127.0.0.1:{dead}/0", started, said.append)
    assert found is None
    [line] = said
    assert f"nothing answers at 127.0.0.1:{dead}" in line and "not installed" in line
    assert "secret" not in line


def test_no_redis_url_and_no_redis_server_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    said: list[str] = []
    with contextlib.ExitStack() as started:
        assert backing.redis(None, started, said.append) is None
    assert said == ["no Redis (redis-server is not installed): each process keeps its own API "
                    "budget and de-duplication"]


def test_a_list_of_brokers_answers_when_any_of_them_does() -> None:
    dead = ports.quiet_port()
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        port = live.getsockname()[1]
        assert ports.answers(f"amqp://g:g@127.0.0.1:{dead}/,amqp://g:g@127.0.0.1:{port}/")
    assert not ports.answers(f"amqp://g:g@127.0.0.1:{dead}/")
    assert not ports.answers("amqp://g:g@h1,h2/")  # not a list we read: nothing answers


def test_with_no_broker_anywhere_every_address_of_the_list_is_named_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("processor.dev.node.find_scripts", lambda *_: None)
    monkeypatch.setattr("processor.dev.container.docker_answers", lambda: False)
    dead, other = ports.quiet_port(), ports.quiet_port()
    with contextlib.ExitStack() as started, pytest.raises(backing.NoBroker) as none:
        backing.broker(f"amqp://u:secret@127.0.0.1:{dead}/,amqp://u:secret@127.0.0.1:{other}/",
                       started, lambda _: None)
    assert f"127.0.0.1:{dead}, 127.0.0.1:{other}" in str(none.value)
    assert "secret" not in str(none.value)

"""What ``up`` runs on, said in one line: a Redis that does not answer is named, never used."""

from __future__ import annotations

import contextlib

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

"""The private ``redis-server`` that ``up`` starts when no Redis answers is its own: a client
without its password is refused, one with the URL ``up`` hands its services gets in, and the
password is never said (nor on the server's command line, which every local user can read)."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from processor.dev import backing

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed"),
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]
ONCE = Retry(NoBackoff(), 0)  # a refusal is final: no retries, no back-off


def test_a_private_redis_refuses_a_client_without_its_password() -> None:
    said: list[str] = []
    with contextlib.ExitStack() as started:
        url = backing.redis(None, started, said.append)
        assert url is not None
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        password = parts.password
        assert password and len(password) >= 32, url

        for guess in (None, "guessed"):
            with redis.Redis(host="127.0.0.1", port=parts.port, password=guess,
                             socket_timeout=5, retry=ONCE) as client, \
                    pytest.raises(redis.AuthenticationError):
                client.ping()
        with redis.Redis.from_url(url, socket_timeout=5) as ours:
            assert ours.ping()
        command_lines = _command_lines(parts.port)

    assert command_lines, "the server was found by its port"
    assert not [line for line in command_lines if password.encode() in line]
    assert not [line for line in said if password in line], said
    assert any(f"127.0.0.1:{parts.port}" in line for line in said), said


def _command_lines(port: int) -> list[bytes]:
    """The command lines that name ``port``: the private redis-server's (its title says it)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            line = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            if str(port).encode() in line:
                found.append(line)
    return found

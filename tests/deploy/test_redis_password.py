"""Redis's password never shows in a process's arguments: redis.yaml's start script, run here
as the container runs it (sh -c, the password in the environment), starts a real
redis-server that asks for the password while /proc/<pid>/cmdline of every process holds none
of it. The compose stack's Redis has no password (not published; see compose.yaml)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.deploy.common import one, rendered
from tests.integration.processes import free_port


def _container() -> dict[str, Any]:
    deployment = one(rendered("prod"), "Deployment", "zenoti-events-redis")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "redis")


def test_no_argument_holds_the_password() -> None:
    container = _container()
    text = " ".join(map(str, [*container["command"], *container["args"]]))
    assert "$(REDIS_PASSWORD)" not in text, "the kubelet would put it in the arguments"
    assert "--requirepass" not in text
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "zenoti-events-redis"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/run/redis"] == "auth"


def test_the_start_script_runs_a_redis_that_needs_the_password(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    container = _container()
    first, *rest = container["args"]
    assert container["command"] == ["sh", "-c"]
    script = str(first).replace("/run/redis", str(tmp_path))
    password = secrets.token_hex(16)
    port = free_port()
    argv = [str(a) for a in rest] + ["--port", str(port), "--dir", str(tmp_path)]
    process = subprocess.Popen(["sh", "-c", script, *argv], env={**os.environ,
                               "REDIS_PASSWORD": password}, stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=password)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert b"redis-server" in cmdline and password.encode() not in cmdline
        assert (tmp_path / "auth.conf").stat().st_mode & 0o077 == 0, "Redis's user alone"
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    finally:
        process.terminate()
        process.wait(timeout=10)

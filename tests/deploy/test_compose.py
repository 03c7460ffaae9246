"""deploy/compose.yaml and the image, for the ingress's spool: a named volume at SPOOL_DIR,
the settings parsing, a stop grace period that holds the spool's drain, and a mount point the
image's user owns; the operator's console, opt-in and given its tokens by the shell only
(tests/unit/test_deploy.py checks the rest of the compose file)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.common import DEPLOY, settings_from

COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SPOOL_DIR = "/var/spool/zenoti-events"


def _seconds(duration: str) -> float:
    found = re.fullmatch(r"(\d+)s", duration)
    assert found, duration
    return float(found[1])


def test_the_ingress_spools_to_a_named_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    ingress = SERVICES["ingress"]
    settings = settings_from(ingress["environment"], monkeypatch)
    assert str(settings.spool_dir) == SPOOL_DIR
    assert settings.spool_max_bytes == 1024**3
    mounts = dict(reversed(v.split(":")[:2]) for v in ingress["volumes"])
    assert mounts[SPOOL_DIR] in COMPOSE["volumes"], "a named volume: it outlives the container"
    assert ingress.get("deploy", {}).get("replicas", 1) == 1, "one process per spool directory"


def test_the_ingress_keeps_the_shared_settings_beside_its_own() -> None:
    shared = COMPOSE["x-zenoti-events"]["environment"]
    ingress = SERVICES["ingress"]["environment"]
    assert ingress.items() >= shared.items()
    assert ingress.keys() - shared.keys() == {
        "ZENOTI_EVENTS_SPOOL_DIR", "ZENOTI_EVENTS_SPOOL_MAX_BYTES",
        "ZENOTI_EVENTS_SPOOL_DRAIN_SECONDS"}


def test_only_the_ingress_spools() -> None:
    for name, service in SERVICES.items():
        if name == "ingress":
            continue
        assert not [k for k in service.get("environment", {}) if "SPOOL" in k], name


def test_the_ingress_stops_within_its_grace_period_spool_drain_included(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ingress = SERVICES["ingress"]
    settings = settings_from(ingress["environment"], monkeypatch)
    assert settings.ingress_shutdown_grace >= (settings.ingress_body_timeout
                                               + settings.confirm_timeout
                                               + settings.spool_write_timeout)
    stop = (settings.ingress_drain_seconds + settings.ingress_shutdown_grace
            + settings.spool_drain_seconds)
    assert _seconds(ingress["stop_grace_period"]) >= stop + 5


def test_the_image_makes_the_spool_directory_its_users() -> None:
    """Docker fills an empty named volume from the image's directory, ownership included."""
    text = DOCKERFILE.read_text()
    (user,) = re.findall(r"^USER\s+(\d+):(\d+)$", text, re.MULTILINE)
    made = re.search(r"install -d -o (\d+) -g (\d+) -m 07[0-7]0 (\S+)", text)
    assert made is not None
    assert made.groups() == (*user, SPOOL_DIR)


def test_every_published_port_is_bound_to_loopback() -> None:
    published = {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}
    assert {"ingress", "sandbox", "worker", "rabbitmq", "console"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_the_simulator_waits_for_tap_and_the_processes() -> None:
    depends = SERVICES["simulator"]["depends_on"]
    assert depends["tap"]["condition"] == "service_started"  # tap has no health endpoint
    assert depends["ingress"]["condition"] == depends["worker"]["condition"] == "service_healthy"


def test_no_password_in_redis_arguments() -> None:
    """Compose's Redis is reachable from the stack's network only (no published port) and has
    no password; Kubernetes's reads its password from a file (test_redis_password.py)."""
    redis = SERVICES["redis"]
    assert "ports" not in redis
    assert not any("pass" in str(arg).lower() for arg in redis["command"])


CONSOLE_TOKENS = ("ZENOTI_EVENTS_CONSOLE_TOKEN", "ZENOTI_EVENTS_CONSOLE_WRITE_TOKEN")


def test_the_console_is_opt_in_so_up_without_tokens_starts_the_rest() -> None:
    """A `${VAR:?}` would not do: compose interpolates every service, profiled or not, so a
    plain `up` would stop at the missing token."""
    console = SERVICES["console"]
    assert console["profiles"] == ["console"]
    assert console["command"] == ["console"]
    assert console["ports"] == ["127.0.0.1:8091:8091"]
    assert "${" not in (DEPLOY / "compose.yaml").read_text(), "nothing to interpolate"
    for name, service in SERVICES.items():
        if name != "console":
            assert "console" not in service.get("depends_on", {}), name


def test_the_console_takes_its_tokens_from_the_shell_and_holds_no_other_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    environment = SERVICES["console"]["environment"]
    for token in CONSOLE_TOKENS:  # a key without a value: the shell's, or unset
        assert token in environment and environment[token] is None, token
    assert not [k for k in environment if "WEBHOOK" in k or "API_KEY" in k]
    given = {k: v for k, v in environment.items() if v is not None}
    settings = settings_from(given | {CONSOLE_TOKENS[0]: "from-the-shell"}, monkeypatch)
    assert settings.console_port == 8091 and not settings.console_secure_cookie
    assert settings.redis_url is not None
    # every replica of the worker, and the ingress, by the names compose gives them
    replicas = SERVICES["worker"]["deploy"]["replicas"]
    assert settings.console_metrics_urls == ["http://ingress:8080/metrics", *[
        f"http://{COMPOSE['name']}-worker-{n}:9100/metrics" for n in range(1, replicas + 1)]]

"""deploy/compose.yaml and the image, for the ingress's spool: a named volume at SPOOL_DIR,
the settings parsing, a stop grace period that holds the spool's drain, and a mount point the
image's user owns (tests/unit/test_deploy.py checks the rest of the compose file)."""

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

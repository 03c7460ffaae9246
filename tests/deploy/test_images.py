"""Every image compose and Kubernetes run is pinned to an exact version (no bare major or minor
tag, no ``latest``, no tag at all), and both run the same RabbitMQ and Redis: an operator or
registry update never changes the broker under us, and what compose tests is what deploys."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.common import DEPLOY, KUSTOMIZATIONS, of_kind, rendered, workloads

# name[:tag][@digest]; an exact tag has major.minor.patch, optionally a suffix
# (4.2.9-management, 3.11.13-slim-bookworm, v1.62.0).
_EXACT_TAG = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][A-Za-z0-9][A-Za-z0-9._-]*)?")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
ALL = tuple(KUSTOMIZATIONS)
# Our own image in compose (zenoti-events:local, built there); Kubernetes gets the release's tag
# from kustomize's images, checked like any other.
OURS = {"zenoti-events"}


def _split(image: str) -> tuple[str, str, str]:
    """``(repository, tag, digest)`` of an image reference ("" for a part it lacks)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1:], digest
    return rest, "", digest


def _pinned(image: str) -> bool:
    _, tag, digest = _split(image)
    if digest:
        return bool(_DIGEST.fullmatch(digest))
    return bool(_EXACT_TAG.fullmatch(tag))


def _name(image: str) -> str:
    return _split(image)[0].rsplit("/", 1)[-1]


def compose_images() -> dict[str, str]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return {service: spec["image"] for service, spec in compose["services"].items()
            if "image" in spec}


def k8s_images(name: str) -> dict[str, str]:
    """Where each image is used (workload/container, the RabbitmqCluster) -> the image."""
    resources = rendered(name)
    found: dict[str, str] = {}
    for workload_name, workload in workloads(resources).items():
        pod = workload["spec"]["template"]["spec"]
        for container in [*pod["containers"], *pod.get("initContainers", [])]:
            found[f"{workload_name}/{container['name']}"] = container["image"]
    for cluster_name, cluster in of_kind(resources, "RabbitmqCluster").items():
        found[f"RabbitmqCluster/{cluster_name}"] = cluster["spec"].get("image", "")
    return found


def _by_name(images: dict[str, str]) -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for image in images.values():
        named.setdefault(_name(image), set()).add(image)
    return named


@pytest.mark.parametrize("image", [
    "rabbitmq:4.2.9-management", "redis:7.2.14", "oliver006/redis_exporter:v1.62.0",
    "python:3.11.13-slim-bookworm", "registry.example.com:5000/x/redis:7.2.14",
    "redis@sha256:" + "a" * 64])
def test_an_exact_version_or_digest_is_pinned(image: str) -> None:
    assert _pinned(image)


@pytest.mark.parametrize("image", [
    "redis", "redis:latest", "redis:7", "redis:7.2", "rabbitmq:4.2-management",
    "rabbitmq:management", "registry.example.com:5000/redis", "redis:7.2.x", "redis@sha256:abc"])
def test_a_moving_tag_is_not(image: str) -> None:
    assert not _pinned(image)


def test_every_compose_image_is_an_exact_version() -> None:
    loose = {service: image for service, image in compose_images().items()
             if _name(image) not in OURS and not _pinned(image)}
    assert not loose


@pytest.mark.parametrize("name", ALL)
def test_every_kubernetes_image_is_an_exact_version(name: str) -> None:
    images = k8s_images(name)
    assert "RabbitmqCluster/zenoti-events-rabbitmq" in images
    assert not {where: image for where, image in images.items() if not _pinned(image)}


@pytest.mark.parametrize("name", ALL)
def test_compose_and_kubernetes_run_the_same_rabbitmq_redis_and_exporter(name: str) -> None:
    ours, theirs = _by_name(compose_images()), _by_name(k8s_images(name))
    for image in ("rabbitmq", "redis", "redis_exporter"):
        assert len(ours[image]) == 1 and ours[image] == theirs[image], image
    assert ours["rabbitmq"] == {"rabbitmq:4.2.9-management"}


def test_the_dockerfile_base_image_is_an_exact_version() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert _pinned(default)
    for line in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE):
        assert line == "${PYTHON_IMAGE}" or _pinned(line), line

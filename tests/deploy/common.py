"""Shared by the deploy tests: paths, the rendered manifests, tools that CI must have."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from processor.settings import Settings
from tests.deploy.kustomize import build

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev",
                  "prod": K8S / "overlays" / "prod"}
OVERLAYS = ("dev", "prod")
CRD_SCHEMAS = DEPLOY / "schemas" / "crds"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "zenoti-events.json"

Resource = dict[str, Any]


@functools.cache
def _rendered(name: str) -> tuple[Resource, ...]:
    return tuple(build(KUSTOMIZATIONS[name]))


def rendered(name: str) -> list[Resource]:
    """The resources of one kustomization (base, dev or prod), as kustomize renders them."""
    import copy

    return copy.deepcopy(list(_rendered(name)))


def workloads(resources: list[Resource]) -> dict[str, Resource]:
    """The Deployments, StatefulSets (the ingress is one) and Jobs (the topology's), by name."""
    return {**of_kind(resources, "Deployment"), **of_kind(resources, "StatefulSet"),
            **of_kind(resources, "Job")}


def of_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def one(resources: list[Resource], kind: str, name: str) -> Resource:
    return of_kind(resources, kind)[name]


def require(tool: str) -> str:
    """The path of ``tool``; a missing tool skips the test locally and fails it in CI."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (Debian: apt-get install -y prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


PREFIX = "ZENOTI_EVENTS_"


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process builds from ``environment`` alone; every ZENOTI_EVENTS_ key in
    it must name a setting (pydantic-settings ignores the others silently: a misspelt key
    would be a setting quietly left at its default)."""
    ours = {k: v for k, v in environment.items() if k.startswith(PREFIX)}
    unknown = sorted(k for k in ours if k[len(PREFIX):].lower() not in Settings.model_fields)
    assert not unknown, f"not settings (processor/settings.py): {unknown}"
    for key in os.environ:
        if key.startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in ours.items():
        monkeypatch.setenv(key, value)
    return Settings()

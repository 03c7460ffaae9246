"""deploy/: the compose stack and the image, checked by reading them (no Docker engine here)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "build" in s}

# The only credentials compose.yaml may hold: public demo values, documented in deploy/README.md.
DEMO_ENV = {
    "ZENOTI_EVENTS_WEBHOOK_SECRETS": '["demo-webhook-secret"]',
    "ZENOTI_EVENTS_API_KEY": "demo-api-key",
    "ZENOTI_EVENTS_AMQP_URL": "amqp://guest:guest@rabbitmq:5672/",
}
DEMO_FLAGS = {"--secret": "demo-webhook-secret", "--api-key": "demo-api-key"}
SECRET_NAME = re.compile(r"SECRET|KEY|PASS|TOKEN|AMQP_URL|TENANTS|CREDENTIAL", re.IGNORECASE)


def final_stage(dockerfile: str) -> str:
    """The instructions after the last FROM, comment lines dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    stages = re.split(r"^FROM\s", "\n".join(lines), flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 3, "expected a builder stage and a final stage"
    return stages[-1]


def test_our_services_are_built_from_the_deploy_dockerfile() -> None:
    assert set(OURS) >= {"sandbox", "ingress", "worker"}
    for name, service in OURS.items():
        build = service["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() \
            == DOCKERFILE, name


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_service_runs_a_subcommand_that_exists(name: str) -> None:
    command = OURS[name]["command"]
    done = subprocess.run([sys.executable, "-m", "processor.cli", command[0], "--help"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from processor.cli import _parser

    _parser().parse_args(command)  # the whole command line parses, options included


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_run_read_only_unprivileged_with_a_tmpfs_tmp(name: str) -> None:
    service = OURS[name]
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]
    assert str(service.get("user", "10001")).split(":")[0] not in ("0", "root")


def test_the_image_runs_as_a_non_root_uid_without_build_tools() -> None:
    final = final_stage(DOCKERFILE.read_text())
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: want a numeric non-zero uid"
    for tool in ("gcc", "g++", "build-essential", "apt-get", "-dev "):
        assert tool not in final, f"{tool} in the final stage"
    assert "COPY --from=builder /opt/zenoti-events" in final and "pip install" not in final, (
        "the final stage takes the builder's environment (the lock's distributions) only")
    assert 'ENTRYPOINT ["zenoti-events"]' in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final


def test_the_image_copies_only_the_package_sources_and_they_exist() -> None:
    sources = [
        part
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE.read_text(), re.MULTILINE)
        for part in line.split()[:-1]
    ]
    assert set(sources) == {"requirements.lock", "pyproject.toml", "README.md", "processor/",
                            "handlers/", "schemas/"}
    for source in sources:
        assert (ROOT / source).exists(), f"the build copies {source}, which is missing"


def test_ingress_waits_for_a_healthy_rabbitmq() -> None:
    assert SERVICES["rabbitmq"]["healthcheck"]["test"] == [
        "CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert SERVICES["ingress"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_the_only_secrets_are_the_documented_demo_values() -> None:
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment must be a mapping"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert DEMO_ENV.get(key) == value, f"{name}: {key} is not a documented demo value"
        command = service.get("command", [])
        for flag, value in itertools.pairwise(command):
            if flag in DEMO_FLAGS:
                assert value == DEMO_FLAGS[flag], f"{name}: {flag} is not the demo value"
    assert "DEMO VALUES" in COMPOSE_FILE.read_text()


# --- the observability half of the stack: Redis, Prometheus, Grafana (issue 6) ---------------

DEPLOY = ROOT / "deploy"


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            mounts[container] = host
    return mounts


def test_rabbitmq_runs_the_management_and_prometheus_plugins() -> None:
    host = _mounts(SERVICES["rabbitmq"])["/etc/rabbitmq/enabled_plugins"]
    plugins = (DEPLOY / host).read_text()
    assert re.fullmatch(r"\[[a-z_,]+\]\.\n", plugins), "an Erlang list of plugin names"
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= set(plugins[1:-3].split(","))
    assert "127.0.0.1:15692:15692" in SERVICES["rabbitmq"]["ports"]


def test_every_process_of_ours_shares_the_redis_service() -> None:
    assert "redis" in SERVICES and "build" not in SERVICES["redis"]
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("ingress", "worker"):
        assert OURS[name]["environment"]["ZENOTI_EVENTS_REDIS_URL"] == "redis://redis:6379/0"
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_prometheus_scrapes_ingress_workers_and_rabbitmq_with_the_rules_loaded() -> None:
    service = SERVICES["prometheus"]
    folder = DEPLOY / _mounts(service)["/etc/prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"] and (folder / "alerts.yml").is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["zenoti-events-ingress"]["static_configs"][0]["targets"] == ["ingress:8080"]
    worker = jobs["zenoti-events-worker"]["dns_sd_configs"][0]
    assert (worker["names"], worker["port"]) == (["worker"], 9100)  # every replica
    detailed = jobs["rabbitmq-detailed"]
    assert detailed["metrics_path"] == "/metrics/detailed"
    assert set(detailed["params"]["family"]) == {"queue_coarse_metrics", "queue_consumer_count"}
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert service["ports"] == ["127.0.0.1:9090:9090"]


def test_grafana_has_prometheus_and_the_dashboard_provisioned() -> None:
    service = SERVICES["grafana"]
    mounts = _mounts(service)
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((provisioning / "dashboards" / "zenoti-events.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert (DEPLOY / mounts[path] / "zenoti-events.json").is_file()
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/zenoti-events.json"
    assert service["ports"] == ["127.0.0.1:3000:3000"]

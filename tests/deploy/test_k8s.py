"""deploy/k8s: rendered by kustomize (a Python renderer, compared with the binary where one is
installed), every object valid against the Kubernetes schemas (kubernetes-validate) or the
vendored CRD schemas (deploy/schemas), and the promises of docs/operations.md kept."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tomllib
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from processor.ops import policies
from processor.settings import Settings
from tests.deploy.common import (
    CRD_SCHEMAS,
    DEPLOY,
    K8S,
    KUSTOMIZATIONS,
    OVERLAYS,
    ROOT,
    Resource,
    of_kind,
    one,
    rendered,
    settings_from,
    workloads,
)

ALL = tuple(KUSTOMIZATIONS)
HANDLERS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                  ["entry-points"]["zenoti_events.handlers"])
# Kubernetes releases the built-in objects are validated against: the oldest still widely run
# and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
# Secrets the manifests may reference, all created outside these files (docs/operations.md).
SECRETS = {
    # made by the topology operator for the Users of rabbitmq-users.yaml
    "zenoti-events-topology-user-credentials": {"username", "password"},
    "zenoti-events-ingress-user-credentials": {"username", "password"},
    "zenoti-events-worker-user-credentials": {"username", "password"},
    "zenoti-events-console-user-credentials": {"username", "password"},
    "zenoti-events-keda-user-credentials": {"username", "password"},
    "zenoti-events-console": {"token", "write-token"},
    "zenoti-events-webhooks": {"webhook-secrets", "tenants"},
    "zenoti-events-zenoti-api": {"api-key", "tenants"},
    "zenoti-events-redis": {"password", "url"},
    "zenoti-events-keda-rabbitmq": {"host"},
}
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
                ("monitoring.coreos.com/v1", "ServiceMonitor"),
                ("monitoring.coreos.com/v1", "PodMonitor"),
                ("monitoring.coreos.com/v1", "PrometheusRule"),
                ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
                ("rabbitmq.com/v1beta1", "User"), ("rabbitmq.com/v1beta1", "Permission"),
                ("rabbitmq.com/v1beta1", "Policy")}
# Custom kinds of the optional pieces (deploy/k8s/optional), validated there.
OPTIONAL_KINDS = {("gateway.networking.k8s.io/v1", "HTTPRoute")}


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    path = CRD_SCHEMAS / f"{group}_{kind.lower()}_{version}.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def key(resource: Resource) -> tuple[str, str, str, str]:
    meta = resource["metadata"]
    return resource["apiVersion"], resource["kind"], meta.get("namespace", ""), meta["name"]


def config(name: str) -> dict[str, str]:
    data: dict[str, str] = one(rendered(name), "ConfigMap", "zenoti-events")["data"]
    return data


# --- rendering -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_the_kustomization_renders(name: str) -> None:
    resources = rendered(name)
    keys = [key(r) for r in resources]
    assert len(keys) == len(set(keys)), "two objects with the same name"
    if name != "base":
        namespace = "zenoti-events-dev" if name == "dev" else "zenoti-events"
        assert {r["metadata"].get("namespace") for r in resources
                if r["kind"] != "Namespace"} == {namespace}
        (made,) = of_kind(resources, "Namespace").values()
        assert made["metadata"]["name"] == namespace


@pytest.mark.parametrize("name", ALL)
def test_the_python_renderer_agrees_with_kustomize(name: str) -> None:
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(KUSTOMIZATIONS[name])]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(KUSTOMIZATIONS[name])]
    else:
        pytest.skip("neither kustomize nor kubectl installed: the Python renderer stands alone")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    theirs = {key(r): r for r in yaml.safe_load_all(done.stdout) if r}
    ours = {key(r): r for r in rendered(name)}
    assert ours == theirs


# --- schemas -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ALL)
def test_built_in_objects_are_valid_kubernetes(name: str, version: str) -> None:
    errors = []
    for resource in rendered(name):
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{resource['kind']}/{resource['metadata']['name']}: "
                          f"{'.'.join(map(str, exc.path))}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", ALL)
def test_custom_resources_are_valid_against_the_vendored_crd_schemas(name: str) -> None:
    kinds = {(r["apiVersion"], r["kind"]) for r in rendered(name)}
    assert kinds >= CUSTOM_KINDS, "every operator's resource is in the deployment"
    errors = []
    for resource in rendered(name):
        if (resource["apiVersion"], resource["kind"]) not in CUSTOM_KINDS:
            continue
        validator = jsonschema.Draft202012Validator(
            crd_schema(resource["apiVersion"], resource["kind"]))
        errors += [f"{resource['kind']}/{resource['metadata']['name']}: "
                   f"{'.'.join(map(str, e.path))}: {e.message}"
                   for e in validator.iter_errors(resource)]
    assert not errors, "\n".join(errors)


def test_every_custom_kind_has_a_vendored_schema_and_only_those_are_skipped() -> None:
    vendored = {p.stem for p in CRD_SCHEMAS.glob("*.json")}
    assert vendored == {f"{a.split('/')[0]}_{k.lower()}_{a.split('/')[1]}"
                        for a, k in CUSTOM_KINDS | OPTIONAL_KINDS}
    for path in CRD_SCHEMAS.glob("*.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize(("kind", "name", "path", "value"), [
    ("ScaledObject", "zenoti-events-worker-package-status", ("spec", "maxReplicaCont"), 3),
    ("ScaledObject", "zenoti-events-worker-package-status", ("spec", "minReplicaCount"), "one"),
    ("ServiceMonitor", "zenoti-events-ingress", ("spec", "endpoints"), [{"prot": "http"}]),
    ("PodMonitor", "zenoti-events-worker", ("spec", "podMetricEndpoints"), []),
    ("PrometheusRule", "zenoti-events", ("spec", "groups"), [{"rules": []}]),
    ("RabbitmqCluster", "zenoti-events-rabbitmq", ("spec", "replica"), 3),
    ("RabbitmqCluster", "zenoti-events-rabbitmq", ("spec", "rabbitmq", "additionalPlugins"),
     ["rabbitmq-management"]),
    ("TriggerAuthentication", "zenoti-events-rabbitmq-management", ("spec", "secretTargetRef"),
     [{"parameter": "host", "name": "x"}]),
    ("ScaledObject", "zenoti-events-worker-package-status", ("spec", "fallback", "behavior"),
     "keepCurrent"),
    ("User", "zenoti-events-keda", ("spec", "tags"), ["monitor"]),
    ("Permission", "zenoti-events-worker", ("spec", "permissions", "reed"), ".*"),
    ("Permission", "zenoti-events-worker", ("spec", "vhost"), None),
    ("Policy", "zenoti-events-work", ("spec", "applyTo"), "queue"),
])
def test_the_crd_schemas_reject_a_mistake(kind: str, name: str, path: tuple[str, ...],
                                          value: Any) -> None:
    resource = one(rendered("prod"), kind, name)
    node = resource
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    validator = jsonschema.Draft202012Validator(crd_schema(resource["apiVersion"], kind))
    assert list(validator.iter_errors(resource)), f"{kind} accepted {path} = {value!r}"


def _validate_custom(resource: Resource) -> list[str]:
    validator = jsonschema.Draft202012Validator(crd_schema(resource["apiVersion"],
                                                           resource["kind"]))
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(resource)]


def test_the_optional_http_route_publishes_the_webhook_path_only_to_the_ingress_service() -> None:
    from tests.deploy.kustomize import build

    (route,) = build(K8S / "optional" / "gateway-api")
    assert (route["apiVersion"], route["kind"]) in OPTIONAL_KINDS
    assert not _validate_custom(route)
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/webhooks/zenoti"}}]
    (backend,) = rule["backendRefs"]
    service = one(rendered("prod"), "Service", "zenoti-events-ingress")
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}
    # the same host as the Ingress of the base
    ingress_ = one(rendered("base"), "Ingress", "zenoti-events")
    assert route["spec"]["hostnames"] == [ingress_["spec"]["rules"][0]["host"]]
    broken = {**route, "spec": {**route["spec"], "rules": [{**rule, "backendRef": []}]}}
    assert _validate_custom(broken), "the schema rejects a misspelt field"


def test_a_misspelt_built_in_field_is_rejected_too() -> None:
    statefulset = one(rendered("prod"), "StatefulSet", "zenoti-events-ingress")
    statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["accessMode"] = ["ReadWriteOnce"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, K8S_VERSIONS[0], strict=True)


# --- the ingress ---------------------------------------------------------------------------

def ingress(name: str) -> Resource:
    """The ingress's StatefulSet."""
    return one(rendered(name), "StatefulSet", "zenoti-events-ingress")


def ingress_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What the ingress process reads: the ConfigMap, overridden by its container's values."""
    (container,) = ingress(name)["spec"]["template"]["spec"]["containers"]
    literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return settings_from(config(name) | literal, monkeypatch)


@pytest.mark.parametrize("name", ALL)
def test_ingress_runs_two_or_more_ready_replicas_one_replaced_at_a_time_under_a_pdb(
        name: str) -> None:
    resources = rendered(name)
    assert "zenoti-events-ingress" not in of_kind(resources, "Deployment"), "a StatefulSet now"
    spec = ingress(name)["spec"]
    pod = spec["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["ingress"]
    assert spec["replicas"] >= 2
    # No surge in a StatefulSet: one pod replaced at a time while the others take the traffic,
    # the next only after the new one has stayed ready; scaled in parallel (interchangeable).
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    assert spec["minReadySeconds"] > 0
    assert spec["podManagementPolicy"] == "Parallel"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": int(
        config(name)["ZENOTI_EVENTS_INGRESS_PORT"])}]
    labels = pod["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pdb = one(resources, "PodDisruptionBudget", "zenoti-events-ingress")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < spec["replicas"]
    service = one(resources, "Service", "zenoti-events-ingress")
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["serviceName"] == service["metadata"]["name"]


@pytest.mark.parametrize("name", ALL)
def test_the_ingress_stops_within_its_grace_period_spool_drain_included(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM: unready for the drain, then requests in flight get the shutdown grace (enough
    for a body still arriving and then its confirm), then the forwarder publishes what it can
    of the spool, then the connections close: within terminationGracePeriodSeconds, with 5 s
    for closing (the comment in ingress.yaml)."""
    settings = ingress_settings(name, monkeypatch)
    assert settings.ingress_shutdown_grace >= (settings.ingress_body_timeout
                                               + settings.confirm_timeout
                                               + settings.spool_write_timeout)
    stop = (settings.ingress_drain_seconds + settings.ingress_shutdown_grace
            + settings.spool_drain_seconds)
    assert ingress(name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= stop + 5


SPOOL_DIR = "/var/spool/zenoti-events"
GIB = 1024**3


@pytest.mark.parametrize("name", ALL)
def test_each_ingress_pod_spools_to_its_own_volume_kept_after_a_scale_down(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ingress(name)["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    volume = claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = spec["template"]["spec"]
    assert volume not in {v["name"] for v in pod["volumes"]}, "one volume per pod, not shared"
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts[volume]["mountPath"] == SPOOL_DIR and not mounts[volume].get("readOnly")
    settings = ingress_settings(name, monkeypatch)
    assert str(settings.spool_dir) == SPOOL_DIR
    # A volume may hold deliveries not yet forwarded: never deleted with its pod.
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                             "whenScaled": "Retain"}


@pytest.mark.parametrize("name", ALL)
def test_the_spool_limit_is_at_most_half_its_volume(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rest is for the filesystem's own reserve and segments written or removed past the
    limit (the comment in ingress.yaml)."""
    (claim,) = ingress(name)["spec"]["volumeClaimTemplates"]
    size = _mib(claim["spec"]["resources"]["requests"]["storage"]) * 1024**2
    settings = ingress_settings(name, monkeypatch)
    assert settings.spool_max_bytes == GIB  # as deploy/README.md states
    assert 2 * settings.spool_max_bytes <= size


@pytest.mark.parametrize("name", ALL)
def test_the_non_root_ingress_can_write_its_spool_volume(name: str) -> None:
    context = ingress(name)["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsUser"] != 0 and context["fsGroup"] == context["runAsGroup"]
    assert context["fsGroupChangePolicy"] == "OnRootMismatch"


@pytest.mark.parametrize("name", ALL)
def test_only_the_ingress_spools(name: str) -> None:
    """The ConfigMap is shared with the workers: the spool's settings are the ingress's own."""
    assert not [k for k in config(name) if k.startswith("ZENOTI_EVENTS_SPOOL_")]
    for deployment in of_kind(rendered(name), "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert not [e for e in container.get("env", [])
                        if e["name"].startswith("ZENOTI_EVENTS_SPOOL_")]


@pytest.mark.parametrize("name", ALL)
def test_only_the_webhook_path_is_published(name: str) -> None:
    (ingress,) = of_kind(rendered(name), "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhooks/zenoti", "Prefix")]
    assert paths[0]["backend"]["service"]["name"] == "zenoti-events-ingress"
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


# --- settings ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_every_configmap_key_is_a_setting_that_parses(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(config(name), monkeypatch)
    assert settings.allow_unsigned is False, "closed by default: signatures are required"
    assert settings.snapshot_kinds == ["members", "guests"]
    # What docs/operations.md and the manifests' comments state.
    assert (settings.handler_timeout, settings.zenoti_call_deadline) == (60.0, 10.0)
    assert (settings.ingress_header_timeout, settings.ingress_body_timeout) == (5.0, 5.0)
    assert settings.handler_timeout > 3 * (settings.zenoti_call_deadline + settings.api_short_wait)


def test_the_compose_environment_is_made_of_settings_that_parse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    settings = settings_from(compose["x-zenoti-events"]["environment"], monkeypatch)
    assert settings.redis_url is not None and not settings.unsigned_tenants()


def _max_message_size(rabbitmq_config: str) -> int:
    found = re.search(r"^\s*max_message_size\s*=\s*(\d+)\s*$", rabbitmq_config, re.MULTILINE)
    assert found, "max_message_size is pinned in the broker's configuration"
    return int(found[1])


@pytest.mark.parametrize("name", ALL)
def test_the_broker_message_size_setting_is_the_brokers(name: str) -> None:
    """The ingress refuses at start-up a body cap the broker would not take; the setting is
    only true if it is the broker's own max_message_size, pinned whatever its version."""
    cluster = one(rendered(name), "RabbitmqCluster", "zenoti-events-rabbitmq")
    broker = _max_message_size(cluster["spec"]["rabbitmq"]["additionalConfig"])
    assert int(config(name)["ZENOTI_EVENTS_BROKER_MAX_MESSAGE_SIZE"]) == broker


def test_compose_states_its_rabbitmq_versions_message_size() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    major = int(compose["services"]["rabbitmq"]["image"].split(":")[1].split(".")[0])
    default = {3: 128 * 1024 * 1024, 4: 16 * 1024 * 1024}[major]
    environment = compose["x-zenoti-events"]["environment"]
    assert int(environment["ZENOTI_EVENTS_BROKER_MAX_MESSAGE_SIZE"]) == default


# --- workers and KEDA ----------------------------------------------------------------------

def worker(name: str, handler: str) -> Resource:
    return one(rendered(name), "Deployment", f"zenoti-events-worker-{handler}")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("handler", HANDLERS)
def test_each_handler_has_a_worker_deployment_that_drains_before_it_is_killed(
        name: str, handler: str) -> None:
    deployment = worker(name, handler)
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["worker", "--handler", handler]
    port = int(config(name)["ZENOTI_EVENTS_WORKER_METRICS_PORT"])
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    script = pre_stop[-1]
    assert "os.kill(1, signal.SIGTERM)" in script and f"127.0.0.1:{port}/readyz" in script
    budget = re.search(r"time.monotonic\(\) \+ (\d+)", script)
    assert budget is not None, script
    pre_stop_budget = float(budget.group(1))
    grace = float(config(name)["ZENOTI_EVENTS_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop_budget + grace


def test_the_worker_deployments_differ_only_in_their_handler() -> None:
    texts = {h: json.dumps(worker("prod", h), sort_keys=True).replace(h, "HANDLER")
             for h in HANDLERS}
    assert len(set(texts.values())) == 1


def test_the_pre_stop_script_is_valid_python() -> None:
    script = worker("base", HANDLERS[0])["spec"]["template"]["spec"]["containers"][0][
        "lifecycle"]["preStop"]["exec"]["command"][-1]
    compile(script, "preStop", "exec")


def max_replicas(scaled: Resource, settings: dict[str, str]) -> int:
    """docs/operations.md, "Scaling": the pods one organisation's API budget can feed, + 1."""
    annotations = scaled["metadata"]["annotations"]
    tenants = int(annotations["zenoti-events.io/budget-tenants"])
    latency = float(annotations["zenoti-events.io/api-latency-seconds"])
    calls_per_second = (float(settings["ZENOTI_EVENTS_API_CALLS_PER_WINDOW"])
                        / float(settings["ZENOTI_EVENTS_API_WINDOW_SECONDS"]))
    short_wait = float(settings["ZENOTI_EVENTS_API_SHORT_WAIT"])
    in_flight = tenants * calls_per_second * (latency + short_wait)
    return math.ceil(in_flight / int(settings["ZENOTI_EVENTS_PREFETCH"])) + 1


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("handler", HANDLERS)
def test_each_handler_queue_scales_on_ready_plus_unacked_up_to_the_api_budget(
        name: str, handler: str) -> None:
    scaled = one(rendered(name), "ScaledObject", f"zenoti-events-worker-{handler}")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == worker(name, handler)["metadata"]["name"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    meta = trigger["metadata"]
    assert meta["queueName"] == f"zenoti.h.{handler}"
    assert (meta["protocol"], meta["mode"]) == ("http", "QueueLength")  # management API
    assert meta.get("excludeUnacknowledged", "false") == "false"  # ready + unacked
    auth = one(rendered(name), "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {ref["parameter"]: ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"host", "username", "password"}
    assert refs["username"] == refs["password"] == "zenoti-events-keda-user-credentials"
    assert spec["minReplicaCount"] >= 1, "a queue without a consumer is an alert"
    # KEDA unable to read the queue: the replicas running stay (not 1 in a backlog)
    assert spec["fallback"]["behavior"] == "currentReplicas"
    assert spec["maxReplicaCount"] == max_replicas(scaled, config(name))
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]


def test_the_arithmetic_gives_the_documented_figures() -> None:
    base = one(rendered("base"), "ScaledObject", f"zenoti-events-worker-{HANDLERS[0]}")
    prod = one(rendered("prod"), "ScaledObject", f"zenoti-events-worker-{HANDLERS[0]}")
    assert (base["spec"]["maxReplicaCount"], prod["spec"]["maxReplicaCount"]) == (2, 3)


# --- RabbitMQ and Redis --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["base", "prod"])
def test_rabbitmq_is_a_three_node_cluster_with_the_plugins_we_need(name: str) -> None:
    cluster = one(rendered(name), "RabbitmqCluster", "zenoti-events-rabbitmq")
    assert cluster["spec"]["replicas"] == 3
    plugins = set(cluster["spec"]["rabbitmq"]["additionalPlugins"])
    assert {"rabbitmq_management", "rabbitmq_prometheus"} <= plugins
    anti = cluster["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"


AMQP_URL = "amqp://$(AMQP_USERNAME):$(AMQP_PASSWORD)@zenoti-events-rabbitmq:5672/"


@pytest.mark.parametrize("name", ALL)
def test_our_processes_connect_as_their_own_rabbitmq_user_and_use_redis(name: str) -> None:
    """Each component's AMQP URL is made of its own User's generated Secret, never the
    cluster's default (admin) user."""
    resources = rendered(name)
    users = of_kind(resources, "User")
    for deployment in workloads(resources).values():
        if deployment["metadata"]["name"] == "zenoti-events-redis":
            continue
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        user = f"zenoti-events-{component}"
        assert user in users
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        names = [e["name"] for e in env]
        by_name = {e["name"]: e for e in env}
        for variable, key in (("AMQP_USERNAME", "username"), ("AMQP_PASSWORD", "password")):
            assert by_name[variable]["valueFrom"]["secretKeyRef"] == {
                "name": f"{user}-user-credentials", "key": key}
            # the kubelet expands $(VAR) only from variables defined before
            assert names.index(variable) < names.index("ZENOTI_EVENTS_AMQP_URL")
        assert by_name["ZENOTI_EVENTS_AMQP_URL"] == {"name": "ZENOTI_EVENTS_AMQP_URL",
                                                     "value": AMQP_URL}
        if component != "topology":  # which declares, and needs no Redis
            redis = by_name["ZENOTI_EVENTS_REDIS_URL"]["valueFrom"]["secretKeyRef"]
            assert redis["name"] == "zenoti-events-redis"
    assert "default-user" not in json.dumps(resources)


@pytest.mark.parametrize("name", ALL)
def test_only_the_topology_job_declares(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingress and workers run with DECLARE_TOPOLOGY=false (the ConfigMap), the Job with
    true, as the only user allowed to configure."""
    resources = rendered(name)
    assert not settings_from(config(name), monkeypatch).declare_topology
    job = one(resources, "Job", "zenoti-events-topology")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["topology"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ZENOTI_EVENTS_DECLARE_TOPOLOGY"] == "true"
    assert pod["restartPolicy"] == "OnFailure"
    assert not pod.get("initContainers")
    for workload in workloads(resources).values():
        spec = workload["spec"]["template"]["spec"]
        if workload["kind"] != "Job":
            for container in [*spec["containers"], *spec.get("initContainers", [])]:
                assert "ZENOTI_EVENTS_DECLARE_TOPOLOGY" not in {
                    e["name"] for e in container.get("env", [])}, workload["metadata"]["name"]
                assert "topology" not in container.get("args", [])
    permissions = {n.removeprefix("zenoti-events-"): p["spec"]["permissions"]
                   for n, p in of_kind(resources, "Permission").items()}
    assert [u for u, p in permissions.items() if p["configure"] != "^$"] == ["topology"]
    assert permissions["ingress"] == {"configure": "^$", "read": "^$",
                                      "write": r"^zenoti\.ingress(\.parked)?$"}


@pytest.mark.parametrize("name", ALL)
def test_the_topology_job_is_removed_once_done_and_the_docs_delete_it_before_each_apply(
        name: str) -> None:
    """A Job's template is immutable and its name fixed: an apply over a Job still there fails
    (or does not run it again), so every documented apply deletes it first, by its name."""
    (job,) = of_kind(rendered(name), "Job").values()
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    delete = f'kubectl -n "$NS" delete job {job["metadata"]["name"]} --ignore-not-found'
    operations = (ROOT / "docs" / "operations.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", operations, re.DOTALL)
    releases = [b for b in blocks if "kubectl apply -k" in b and "job/" in b]
    assert len(releases) >= 2, "Apply and Upgrading both run the Job"
    for block in releases:
        assert delete in block and block.index(delete) < block.index("kubectl apply -k"), block
    assert f"delete job {job['metadata']['name']}" in (DEPLOY / "README.md").read_text()


@pytest.mark.parametrize("name", ALL)
def test_every_user_has_a_permission_on_the_vhost_and_keda_only_monitors(name: str) -> None:
    resources = rendered(name)
    users, permissions = of_kind(resources, "User"), of_kind(resources, "Permission")
    cluster = one(resources, "RabbitmqCluster", "zenoti-events-rabbitmq")["metadata"]["name"]
    assert set(users) == {p["spec"]["userReference"]["name"] for p in permissions.values()}
    for obj in [*users.values(), *permissions.values()]:
        assert obj["spec"]["rabbitmqClusterReference"] == {"name": cluster}
    for permission in permissions.values():
        assert permission["spec"]["vhost"] == "/"
        for regex in permission["spec"]["permissions"].values():
            re.compile(regex)  # RabbitMQ's are PCRE; these use nothing Python's lacks
    assert users["zenoti-events-keda"]["spec"]["tags"] == ["monitoring"]
    assert permissions["zenoti-events-keda"]["spec"]["permissions"] == {
        "configure": "^$", "write": "^$", "read": "^$"}
    for user in ("zenoti-events-ingress", "zenoti-events-worker", "zenoti-events-console"):
        assert not users[user]["spec"].get("tags"), "no management access"
    assert users["zenoti-events-topology"]["spec"]["tags"] == ["policymaker"]


@pytest.mark.parametrize("name", ALL)
def test_the_policies_say_what_the_configmap_says(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """policies.yaml must be in step with the settings that shape new queues."""
    settings = settings_from(config(name), monkeypatch)
    work = one(rendered(name), "Policy", "zenoti-events-work")["spec"]
    assert work["definition"]["delivery-limit"] == settings.delivery_limit
    assert re.fullmatch(work["pattern"], "zenoti.h.package-status")
    assert not re.fullmatch(work["pattern"], "zenoti.h.package-status.dead")
    archive = one(rendered(name), "Policy", "zenoti-events-archive")["spec"]["definition"]
    assert archive["max-length-bytes"] == int(config(name)["ZENOTI_EVENTS_ARCHIVE_MAX_BYTES"])
    assert archive["max-age"] == config(name)["ZENOTI_EVENTS_ARCHIVE_MAX_AGE"]


@pytest.mark.parametrize("name", ALL)
def test_the_topology_job_puts_exactly_the_policies_the_operator_does(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Job (its policymaker user) and the topology operator both set the policies: the
    same names, patterns, priorities and definitions, so neither undoes the other."""
    settings = settings_from(config(name), monkeypatch)
    operator = {p["spec"]["name"]: {"pattern": p["spec"]["pattern"],
                                    "definition": p["spec"]["definition"],
                                    "priority": p["spec"]["priority"],
                                    "apply-to": p["spec"]["applyTo"], "vhost": p["spec"]["vhost"]}
                for p in of_kind(rendered(name), "Policy").values()}
    job = {p.name: {**p.body(), "vhost": "/"} for p in policies.policies_for(settings)}
    assert operator == job


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_namespace_enforces_baseline_and_warns_on_less_than_restricted(name: str) -> None:
    """RabbitMQ's pods (the operator's) declare no seccomp profile: baseline is enforced,
    restricted warned and audited; our own pods meet restricted (the test below)."""
    (namespace,) = of_kind(rendered(name), "Namespace").values()
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("name", ALL)
def test_our_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    for workload in workloads(rendered(name)).values():
        pod = workload["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in [*pod["containers"], *pod.get("initContainers", [])]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert not context.get("capabilities", {}).get("add")
            assert not context.get("privileged")
            assert not any(p.get("hostPort") for p in container.get("ports", []))


@pytest.mark.parametrize("name", OVERLAYS)
def test_runbook_links_point_at_the_overlays_base(name: str) -> None:
    rule = one(rendered(name), "PrometheusRule", "zenoti-events")
    source = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    base = {"dev": "https://github.com/example/zenoti-events/blob/main",
            "prod": "https://github.com/example/zenoti-events/blob/v0.1.0"}[name]
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    wanted = [r["annotations"]["runbook_url"] for g in source for r in g["rules"]]
    assert len(urls) == len(wanted) >= 30
    for url, original in zip(urls, wanted, strict=True):
        assert url == base + "/docs/" + original.split("/docs/", 1)[1]
    assert not of_kind(rendered(name), "ConfigMap").get("zenoti-events-runbooks"), (
        "local-config: never applied")


@pytest.mark.parametrize("name", ALL)
def test_rabbitmq_spreads_over_zones_and_a_drain_takes_one_node_at_a_time(name: str) -> None:
    """One node per zone: a must in prod (a pod waits rather than share a zone), a wish
    elsewhere (a hard constraint keeps pods off nodes without a zone label: Pending forever on
    clusters without zones)."""
    resources = rendered(name)
    cluster = one(resources, "RabbitmqCluster", "zenoti-events-rabbitmq")
    pod = cluster["spec"]["override"]["statefulSet"]["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    wanted = "DoNotSchedule" if name == "prod" else "ScheduleAnyway"
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, wanted)
    labels = {"app.kubernetes.io/name": "zenoti-events-rabbitmq"}  # the operator's pod label
    assert spread["labelSelector"]["matchLabels"] == labels
    pdb = one(resources, "PodDisruptionBudget", "zenoti-events-rabbitmq")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": labels}}


# Redis, per organisation (docs/operations.md, "Snapshots"; the comment in redis.yaml):
# snapshots 18 MB + de-duplication 2 MB + the API cache 46 MB.
REDIS_MIB_PER_TENANT = 66
REDIS_GROWTH = 1.2
# The container's limit over maxmemory: allocator fragmentation and client buffers.
REDIS_OVERHEAD = (1.25, 32)


def _mib(quantity: str) -> float:
    """A Redis size ("200mb") or a Kubernetes quantity ("288Mi", "2Gi") in MiB."""
    found = re.fullmatch(r"(\d+)(mb|gb|Mi|Gi)", quantity)
    assert found, quantity
    return int(found[1]) * (1024 if found[2] in ("gb", "Gi") else 1)


@pytest.mark.parametrize("name", ALL)
def test_redis_is_sized_for_the_organisations_planned_and_evicts_the_idlest_keys(
        name: str) -> None:
    resources = rendered(name)
    tenants = max(int(s["metadata"]["annotations"]["zenoti-events.io/budget-tenants"])
                  for s in of_kind(resources, "ScaledObject").values())
    pod = one(resources, "Deployment", "zenoti-events-redis")["spec"]["template"]["spec"]
    redis = next(c for c in pod["containers"] if c["name"] == "redis")
    args = redis["args"]
    maxmemory = _mib(args[args.index("--maxmemory") + 1])
    assert args[args.index("--maxmemory-policy") + 1] == "volatile-lru"
    assert maxmemory >= tenants * REDIS_MIB_PER_TENANT * REDIS_GROWTH
    limit = _mib(redis["resources"]["limits"]["memory"])
    assert limit >= maxmemory * REDIS_OVERHEAD[0] + REDIS_OVERHEAD[1]
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]


@pytest.mark.parametrize("name", ALL)
def test_redis_metrics_are_scraped_and_reachable_from_monitoring_only(name: str) -> None:
    resources = rendered(name)
    pod = one(resources, "Deployment", "zenoti-events-redis")["spec"]["template"]
    exporter = next(c for c in pod["spec"]["containers"] if c["name"] == "exporter")
    (port,) = exporter["ports"]
    service = one(resources, "Service", "zenoti-events-redis")
    assert {"name": "metrics", "port": port["containerPort"], "targetPort": "metrics"} in (
        service["spec"]["ports"])
    monitor = one(resources, "ServiceMonitor", "zenoti-events-redis")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    # job="zenoti-events-redis" (the Service's name), as the alerts and the dashboard select
    assert service["metadata"]["name"] == "zenoti-events-redis"
    policy = one(resources, "NetworkPolicy", "zenoti-events-redis")
    rules = [r for r in policy["spec"]["ingress"]
             if {"port": port["containerPort"], "protocol": "TCP"} in r["ports"]]
    assert [r["from"] for r in rules] == [[{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]]


# --- the operator's console ---------------------------------------------------------------

CONSOLE_PORT = 8091


def console(name: str) -> Resource:
    return one(rendered(name), "Deployment", "zenoti-events-console")


def _console_container(name: str) -> dict[str, Any]:
    (container,) = console(name)["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["console"]
    return dict(container)


@pytest.mark.parametrize("name", ALL)
def test_the_console_is_one_pod_that_serves_on_its_port_and_is_probed_without_a_session(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions live in the process and a lot takes one pass at a time: never two pods, not
    even during a rollout. The probes ask for /healthz, which needs no session and no broker."""
    spec = console(name)["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    container = _console_container(name)
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": CONSOLE_PORT}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = settings_from(config(name) | literal | {
        "ZENOTI_EVENTS_CONSOLE_TOKEN": "from-the-secret"}, monkeypatch)
    assert settings.console_port == CONSOLE_PORT
    assert settings.console_secure_cookie, "the cookie stays Secure (localhost keeps it)"
    assert not of_kind(rendered(name), "PodDisruptionBudget").get("zenoti-events-console"), (
        "a budget on a single pod would block every node drain")


@pytest.mark.parametrize("name", ALL)
def test_the_console_logs_in_with_tokens_from_a_secret_the_write_token_optional(
        name: str) -> None:
    env = {e["name"]: e for e in _console_container(name)["env"]}
    token = env["ZENOTI_EVENTS_CONSOLE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "zenoti-events-console", "key": "token"}, "required: no optional"
    write = env["ZENOTI_EVENTS_CONSOLE_WRITE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert write == {"name": "zenoti-events-console", "key": "write-token", "optional": True}
    assert not [n for n in env if "API_KEY" in n or "WEBHOOK" in n], "no secret it does not use"


@pytest.mark.parametrize("name", ALL)
def test_the_console_is_a_cluster_service_that_no_ingress_or_route_publishes(name: str) -> None:
    from tests.deploy.kustomize import build

    resources = rendered(name)
    service = one(resources, "Service", "zenoti-events-console")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": CONSOLE_PORT,
                                         "targetPort": "http"}]
    pod_labels = console(name)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    published = json.dumps([*of_kind(resources, "Ingress").values(),
                            *build(K8S / "optional" / "gateway-api")])
    assert "zenoti-events-console" not in published
    assert str(CONSOLE_PORT) not in published


@pytest.mark.parametrize("name", ALL)
def test_the_console_scrapes_every_ingress_and_worker_pod_through_headless_services(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONSOLE_METRICS_URLS parses as the setting and names two headless Services, one
    selecting the ingress's pods on their http port, one every handler's workers on their
    metrics port (the ConfigMap's WORKER_METRICS_PORT); no ServiceMonitor selects them (else
    Prometheus would scrape each pod twice)."""
    resources = rendered(name)
    env = {e["name"]: e.get("value") for e in _console_container(name)["env"]}
    urls = settings_from({"ZENOTI_EVENTS_CONSOLE_METRICS_URLS": str(
        env["ZENOTI_EVENTS_CONSOLE_METRICS_URLS"])}, monkeypatch).console_metrics_urls
    hosts = {u.split("/")[2].split(":")[0]: int(u.split("/")[2].split(":")[1]) for u in urls}
    assert hosts == {"zenoti-events-ingress-metrics": 8080,
                     "zenoti-events-worker-metrics": int(config(name)[
                         "ZENOTI_EVENTS_WORKER_METRICS_PORT"])}
    pods = [ingress(name), *(worker(name, h) for h in HANDLERS)]
    for host, port in hosts.items():
        service = one(resources, "Service", host)
        assert service["spec"]["clusterIP"] == "None"
        (spec_port,) = service["spec"]["ports"]
        picked = [p for p in pods if service["spec"]["selector"].items()
                  <= p["spec"]["template"]["metadata"]["labels"].items()]
        assert len(picked) == (1 if "ingress" in host else len(HANDLERS)), host
        for pod in picked:
            (container,) = [c for c in pod["spec"]["template"]["spec"]["containers"]
                            if any(p["name"] == spec_port["targetPort"]
                                   for p in c.get("ports", []))]
            named = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert named[spec_port["targetPort"]] == port == spec_port["port"]
        for monitor in of_kind(resources, "ServiceMonitor").values():
            wanted = monitor["spec"]["selector"]["matchLabels"].items()
            assert not wanted <= service["metadata"]["labels"].items(), monitor


@pytest.mark.parametrize("name", ALL)
def test_the_console_user_reads_the_lots_and_writes_where_replay_publishes_only(
        name: str) -> None:
    """What processor/ops/parking.py does: basic.get and ack on a lot or zenoti.unrouted,
    copies through the default exchange (kept, or replayed to the work queue) and to
    zenoti.events (unrouted replayed); the archive for the overview. Passive declarations
    need no permission, so no configure."""
    permission = one(rendered(name), "Permission", "zenoti-events-console")
    granted = permission["spec"]["permissions"]
    assert granted["configure"] == "^$"

    def allows(kind: str, entity: str) -> bool:
        return re.search(granted[kind], entity) is not None

    for lot in ("zenoti.h.package-status.dead", "zenoti.unrouted", "zenoti.archive"):
        assert allows("read", lot), lot
    for refused in ("zenoti.h.package-status", "zenoti.h.package-status.retry.5s",
                    "zenoti.enriched.unclaimed", "zenoti.dead", "zenoti.ingress.parked"):
        assert not allows("read", refused), refused
    for target in ("amq.default", "zenoti.events"):
        assert allows("write", target), target
    for refused in ("zenoti.ingress", "zenoti.enriched", "zenoti.dead", "zenoti.unrouted"):
        assert not allows("write", refused), refused


# --- secrets -------------------------------------------------------------------------------

def _secret_refs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node["secretKeyRef"]] if "secretKeyRef" in node else []
        if {"parameter", "name", "key"} <= node.keys():  # KEDA secretTargetRef
            found.append({"name": node["name"], "key": node["key"]})
        return found + [ref for value in node.values() for ref in _secret_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _secret_refs(value)]
    return []


@pytest.mark.parametrize("name", ALL)
def test_secrets_are_referenced_never_inlined(name: str) -> None:
    resources = rendered(name)
    assert not of_kind(resources, "Secret"), "no Secret object (and so no secret value) here"
    refs = _secret_refs(resources)
    assert refs
    for ref in refs:
        assert ref["key"] in SECRETS.get(ref["name"], set()), f"undocumented secret {ref}"
    secret_like = re.compile(r"SECRET|KEY|PASS|TOKEN|AMQP_URL|REDIS_URL|TENANTS")
    for deployment in workloads(resources).values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if secret_like.search(env["name"]) and env["name"] == "ZENOTI_EVENTS_AMQP_URL":
                    # composed from Secret-held variables only: no credential in the text
                    assert re.sub(r"\$\((AMQP_USERNAME|AMQP_PASSWORD)\)", "", env["value"]) \
                        == "amqp://:@zenoti-events-rabbitmq:5672/"
                elif secret_like.search(env["name"]):
                    assert "value" not in env, f"{env['name']} inlined"
    for key_ in config(name):
        assert not secret_like.search(key_) or key_ in {
            "ZENOTI_EVENTS_API_CALLS_PER_WINDOW", "ZENOTI_EVENTS_API_WINDOW_SECONDS",
            "ZENOTI_EVENTS_API_SHORT_WAIT"}, f"{key_} in a ConfigMap"


def test_the_ingress_never_holds_api_keys_and_workers_never_hold_webhook_secrets() -> None:
    resources = rendered("prod")
    refs = _secret_refs(one(resources, "StatefulSet", "zenoti-events-ingress"))
    assert "zenoti-events-zenoti-api" not in {r["name"] for r in refs}
    for handler in HANDLERS:
        refs = _secret_refs(worker("prod", handler))
        assert "zenoti-events-webhooks" not in {r["name"] for r in refs}


# --- security and network ------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_every_pod_runs_non_root_read_only_without_capabilities(name: str) -> None:
    found = workloads(rendered(name))
    assert "zenoti-events-ingress" in found
    for deployment in found.values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert "memory" in container["resources"]["limits"]


def _selects(policy: Resource, labels: dict[str, str]) -> bool:
    wanted: dict[str, str] = policy["spec"]["podSelector"].get("matchLabels", {})
    return wanted.items() <= labels.items()


@pytest.mark.parametrize("name", ALL)
def test_only_the_ingress_is_reachable_from_outside(name: str) -> None:
    resources = rendered(name)
    policies = list(of_kind(resources, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"], "default deny"
    open_to_all = [(p["metadata"]["name"], rule) for p in policies
                   for rule in p["spec"].get("ingress", []) if "from" not in rule]
    assert len(open_to_all) == 1
    policy_name, rule = open_to_all[0]
    policy = one(resources, "NetworkPolicy", policy_name)
    ingress_pod = one(resources, "StatefulSet", "zenoti-events-ingress")["spec"]["template"]
    assert _selects(policy, ingress_pod["metadata"]["labels"])
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    console_pods = {"app.kubernetes.io/name": "zenoti-events",
                    "app.kubernetes.io/component": "console"}
    for handler in HANDLERS:  # workers: only metrics, from monitoring and the console only
        labels = worker(name, handler)["spec"]["template"]["metadata"]["labels"]
        rules = [r for p in policies if p["spec"]["podSelector"] != {} and _selects(p, labels)
                 for r in p["spec"].get("ingress", [])]
        assert rules and all(r["ports"] == [{"port": 9100, "protocol": "TCP"}] for r in rules)
        assert [peer for r in rules for peer in r["from"]] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            {"podSelector": {"matchLabels": console_pods}}]


# --- monitoring ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_ingress_workers_and_rabbitmq_are_scraped(name: str) -> None:
    resources = rendered(name)
    service = one(resources, "Service", "zenoti-events-ingress")
    monitor = one(resources, "ServiceMonitor", "zenoti-events-ingress")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports

    pods = one(resources, "PodMonitor", "zenoti-events-worker")
    for handler in HANDLERS:
        labels = worker(name, handler)["spec"]["template"]["metadata"]["labels"]
        assert pods["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert labels[pods["spec"]["jobLabel"]] == "zenoti-events-worker"
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"

    rabbit = one(resources, "ServiceMonitor", "zenoti-events-rabbitmq")
    rabbit_selector = rabbit["spec"]["selector"]["matchLabels"]
    assert rabbit_selector["app.kubernetes.io/name"] == "zenoti-events-rabbitmq"
    paths = {e["path"]: e for e in rabbit["spec"]["endpoints"]}
    assert set(paths) == {"/metrics", "/metrics/detailed"}
    assert set(paths["/metrics/detailed"]["params"]["family"]) == {
        "queue_coarse_metrics", "queue_consumer_count", "ra_metrics"}
    assert {e["port"] for e in rabbit["spec"]["endpoints"]} == {"prometheus"}

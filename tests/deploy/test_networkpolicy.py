"""The rendered NetworkPolicies, asked about concrete connections (tests/deploy/netpol.py
evaluates them as the API defines): consumers of zenoti.enriched and the RabbitMQ operators get
in, strangers do not; the operator's console admits only pods labelled for it; our pods get out
only where they must."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from tests.deploy.common import OVERLAYS, of_kind, one, rendered
from tests.deploy.netpol import Address, Pod, Policy, admits

CONSUMER = {"zenoti-events.io/consumer": "true"}


def _policies(name: str) -> list[Policy]:
    return list(of_kind(rendered(name), "NetworkPolicy").values())


def _namespace(name: str) -> str:
    return str(one(rendered(name), "ConfigMap", "zenoti-events")["metadata"]["namespace"])


def _pod(name: str, kind: str, object_name: str) -> Pod:
    template = one(rendered(name), kind, object_name)["spec"]["template"]
    return Pod(_namespace(name), dict(template["metadata"]["labels"]), ip="10.1.0.10")


def _ingress(name: str) -> Pod:
    return _pod(name, "StatefulSet", "zenoti-events-ingress")


def _worker(name: str) -> Pod:
    return _pod(name, "Deployment", "zenoti-events-worker-package-status")


def _console(name: str) -> Pod:
    return _pod(name, "Deployment", "zenoti-events-console")


def _redis(name: str) -> Pod:
    return _pod(name, "Deployment", "zenoti-events-redis")


def _rabbitmq(name: str) -> Pod:
    # the labels the RabbitMQ cluster operator gives its pods
    return Pod(_namespace(name), {"app.kubernetes.io/name": "zenoti-events-rabbitmq",
                                  "app.kubernetes.io/component": "rabbitmq",
                                  "app.kubernetes.io/part-of": "rabbitmq"}, ip="10.1.0.20")


@pytest.mark.parametrize("name", OVERLAYS)
def test_consumers_reach_amqp_by_pod_or_namespace_label_from_any_namespace(name: str) -> None:
    policies, rabbit = _policies(name), _rabbitmq(name)
    labelled_pod = Pod("shop", CONSUMER)
    labelled_namespace = Pod("analytics", {"app": "etl"}, namespace_labels=CONSUMER)
    labelled_here = Pod(_namespace(name), CONSUMER)
    stranger = Pod("shop", {"app": "web"})
    for consumer in (labelled_pod, labelled_namespace, labelled_here):
        assert admits(policies, consumer, rabbit, 5672), consumer
        assert not admits(policies, consumer, rabbit, 15672), "AMQP only, not management"
    assert not admits(policies, stranger, rabbit, 5672)
    assert not admits(policies, Address("203.0.113.9"), rabbit, 5672)
    # our own processes, as before
    for ours in (_ingress(name), _worker(name)):
        assert admits(policies, ours, rabbit, 5672)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_operators_keda_and_prometheus_reach_only_their_ports(name: str) -> None:
    policies, rabbit = _policies(name), _rabbitmq(name)
    operator = Pod("rabbitmq-system", {"app.kubernetes.io/name": "messaging-topology-operator"})
    keda = Pod("keda", {"app": "keda-operator"})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert admits(policies, operator, rabbit, 15672)
    assert admits(policies, keda, rabbit, 15672)
    assert admits(policies, prometheus, rabbit, 15692)
    for pod in (operator, keda, prometheus):
        assert not admits(policies, pod, rabbit, 5672)
    assert not admits(policies, prometheus, rabbit, 15672)
    assert not admits(policies, Pod("shop", {"app": "web"}), rabbit, 15672)
    # the nodes among themselves
    assert admits(policies, rabbit, Pod(rabbit.namespace, rabbit.labels, ip="10.1.0.21"), 25672)


DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, ip="10.96.0.10")
ZENOTI = Address("52.10.20.30")  # an address on the internet
METADATA = Address("169.254.169.254")


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ingress_gets_out_to_dns_rabbitmq_and_redis_only(name: str) -> None:
    policies, pod = _policies(name), _ingress(name)
    assert admits(policies, pod, DNS, 53, "UDP") and admits(policies, pod, DNS, 53, "TCP")
    assert admits(policies, pod, _rabbitmq(name), 5672)
    assert admits(policies, pod, _redis(name), 6379)
    assert not admits(policies, pod, _rabbitmq(name), 15672)
    assert not admits(policies, pod, ZENOTI, 443)
    assert not admits(policies, pod, METADATA, 80)
    assert not admits(policies, pod, Pod("shop", {"app": "web"}), 8080)


@pytest.mark.parametrize("name", OVERLAYS)
def test_workers_get_out_to_those_and_https_on_the_internet_never_to_metadata(
        name: str) -> None:
    policies, pod = _policies(name), _worker(name)
    assert admits(policies, pod, DNS, 53, "UDP") and admits(policies, pod, DNS, 53, "TCP")
    assert admits(policies, pod, _rabbitmq(name), 5672)
    assert admits(policies, pod, _redis(name), 6379)
    assert admits(policies, pod, ZENOTI, 443)
    assert admits(policies, pod, Address("2606:4700::1"), 443)
    assert not admits(policies, pod, ZENOTI, 80)
    for inside in ("169.254.169.254", "10.0.0.1", "172.20.0.1", "192.168.1.1", "100.64.0.1",
                   "fd00:ec2::254"):
        assert not admits(policies, pod, Address(inside), 443), inside
    assert not admits(policies, pod, Pod("shop", {"app": "web"}, ip="10.2.0.5"), 443)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_topology_job_gets_out_to_dns_and_rabbitmq_amqp_and_management_only(
        name: str) -> None:
    policies, pod = _policies(name), _pod(name, "Job", "zenoti-events-topology")
    assert admits(policies, pod, DNS, 53, "UDP") and admits(policies, pod, DNS, 53, "TCP")
    assert admits(policies, pod, _rabbitmq(name), 5672)
    assert admits(policies, pod, _rabbitmq(name), 15672)  # its policies
    assert not admits(policies, pod, _redis(name), 6379)
    assert not admits(policies, pod, ZENOTI, 443)
    assert not admits(policies, pod, METADATA, 80)
    # the management port is the Job's alone among our pods
    assert not admits(policies, _worker(name), _rabbitmq(name), 15672)


CONSOLE_ACCESS = {"zenoti-events.io/console-access": "true"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_pods_labelled_for_it_in_its_namespace_reach_the_console(name: str) -> None:
    policies, console = _policies(name), _console(name)
    proxy = Pod(_namespace(name), {"app": "oauth2-proxy", **CONSOLE_ACCESS})
    assert admits(policies, proxy, console, 8091)
    assert not admits(policies, proxy, console, 9100), "its port only"
    for stranger in (Pod(_namespace(name), {"app": "debug"}),
                     Pod("shop", {"app": "web", **CONSOLE_ACCESS}),  # labelled, elsewhere
                     Pod("analytics", {"app": "etl"}, namespace_labels=CONSOLE_ACCESS),
                     Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}),
                     Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
                     _ingress(name), _worker(name), Address("203.0.113.9")):
        assert not admits(policies, stranger, console, 8091), stranger


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_console_gets_out_to_dns_rabbitmq_redis_and_the_metrics_only(name: str) -> None:
    policies, pod = _policies(name), _console(name)
    assert admits(policies, pod, DNS, 53, "UDP") and admits(policies, pod, DNS, 53, "TCP")
    assert admits(policies, pod, _rabbitmq(name), 5672)
    assert admits(policies, pod, _redis(name), 6379)
    assert admits(policies, pod, _ingress(name), 8080)  # the ingress's /metrics
    assert admits(policies, pod, _worker(name), 9100)  # the workers' /metrics
    assert not admits(policies, pod, _rabbitmq(name), 15672), "the topology Job's alone"
    assert not admits(policies, pod, _redis(name), 9121)
    assert not admits(policies, pod, ZENOTI, 443)
    assert not admits(policies, pod, METADATA, 80)
    assert not admits(policies, pod, Pod("shop", {"app": "web"}), 8080)
    # the workers' metrics stay closed to everything but Prometheus and the console
    assert not admits(policies, _ingress(name), _worker(name), 9100)
    assert admits(policies, Pod("monitoring", {"app": "prometheus"}), _worker(name), 9100)


def test_the_evaluator_is_not_vacuous() -> None:
    """Without policies everything is open; a default deny closes ingress."""
    rabbit = Pod("ns", {"app": "x"})
    assert admits([], Pod("other"), rabbit, 5672)
    deny = {"metadata": {"namespace": "ns"}, "spec": {"podSelector": {},
                                                       "policyTypes": ["Ingress"]}}
    assert not admits([deny], Pod("other"), rabbit, 5672)


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_console_reaches_every_pod_behind_its_metrics_urls(name: str) -> None:
    """Each CONSOLE_METRICS_URLS entry names a headless Service; every workload its selector
    picks is reachable from the console on the URL's port (the pod's, since the console
    connects to each pod's address)."""
    resources, policies, console = rendered(name), _policies(name), _console(name)
    (container,) = one(resources, "Deployment", "zenoti-events-console")["spec"]["template"][
        "spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    urls = [urlsplit(u) for u in json.loads(env["ZENOTI_EVENTS_CONSOLE_METRICS_URLS"])]
    assert len(urls) == 2
    for url in urls:
        service = one(resources, "Service", str(url.hostname))
        assert service["spec"]["clusterIP"] == "None", "headless: one address per pod"
        picked = [pod for pod in (_ingress(name), _worker(name), _console(name))
                  if service["spec"]["selector"].items() <= pod.labels.items()]
        assert picked, service["metadata"]["name"]
        for pod in picked:
            assert admits(policies, console, pod, int(url.port or 80)), (url, pod)

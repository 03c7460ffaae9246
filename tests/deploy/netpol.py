"""What a set of NetworkPolicies admits, by the rules of networking.k8s.io/v1 (the subset
deploy/k8s uses: matchLabels selectors, ipBlock with except, ports with a protocol), so that
tests can ask whether a given connection is allowed without a cluster or a CNI."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Policy = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    ip: str = "10.0.0.1"

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


@dataclass(frozen=True)
class Address:
    """Something outside the cluster's pods: an IP address only."""

    ip: str


Peer = Pod | Address


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    assert selector is None or set(selector) <= {"matchLabels"}, "only matchLabels is modelled"
    wanted = (selector or {}).get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _in_block(block: dict[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(block["cidr"])
    if address.version != network.version or address not in network:
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except", [])
                   if ipaddress.ip_network(e).version == address.version)


def _peer_matches(peer: dict[str, Any], other: Peer, own_namespace: str) -> bool:
    if "ipBlock" in peer:
        return _in_block(peer["ipBlock"], other.ip)
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], other.ns_labels()):
            return False
    elif other.namespace != own_namespace:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol
                            for p in ports)


def _allowed(policies: list[Policy], pod: Pod, other: Peer, port: int, protocol: str,
             direction: str) -> bool:
    kind, key, peers = ("Ingress", "ingress", "from") if direction == "in" else (
        "Egress", "egress", "to")
    selecting = [p for p in policies if p["metadata"].get("namespace", pod.namespace)
                 == pod.namespace and kind in p["spec"].get("policyTypes", ["Ingress"])
                 and _selects(p["spec"]["podSelector"], pod.labels)]
    if not selecting:
        return True  # not isolated in this direction
    return any(
        _port_matches(rule.get("ports"), port, protocol)
        and (not rule.get(peers) or any(_peer_matches(peer, other, pod.namespace)
                                        for peer in rule[peers]))
        for policy in selecting for rule in policy["spec"].get(key, []))


def admits(policies: list[Policy], source: Peer, target: Peer, port: int,
           protocol: str = "TCP") -> bool:
    """Whether a connection from ``source`` to ``target``:``port`` passes both the source's
    egress policies and the target's ingress policies (among ``policies``)."""
    out = not isinstance(source, Pod) or _allowed(policies, source, target, port, protocol, "out")
    into = not isinstance(target, Pod) or _allowed(policies, target, source, port, protocol, "in")
    return out and into

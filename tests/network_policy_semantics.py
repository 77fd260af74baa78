"""What a NetworkPolicy-enforcing network plugin lets through, as a pure function of the policies.

The API server only stores NetworkPolicies; a CNI enforces them, and no CNI runs here. So the tests
of deploy/ ask this model instead, built from the API reference
(https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/) and the
concept page (https://kubernetes.io/docs/concepts/services-networking/network-policies/):

- a policy applies to the pods of its own namespace that its podSelector selects;
- a pod is isolated in a direction once any policy that applies to it has that policy type (no
  policyTypes: Ingress, plus Egress when the policy has egress rules); a pod that is not isolated
  lets everything through in that direction;
- an isolated pod lets a connection through when any rule of any applying policy of that direction
  matches both the peer and the port (policies are additive, none can deny);
- a rule without `from`/`to` matches every peer, one without `ports` every port; a peer entry with
  podSelector alone means pods of the policy's namespace, namespaceSelector alone every pod of the
  selected namespaces, both in one entry pods that match both; ipBlock matches addresses;
- a named port resolves on the destination pod's container ports; protocol defaults to TCP.

A connection between two pods must be allowed twice: as egress of the source and as ingress of the
destination. Traffic from the pod's own node (kubelet probes) and over loopback is always allowed and
is not modelled. The model covers what deploy/ uses and the cases its tests check, no more.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Policy = dict[str, Any]
Direction = Literal["Ingress", "Egress"]


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace set) or an address outside any pod (namespace None)."""

    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(name, protocol) -> containerPort, from the pod's containers."""

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def pod(
    namespace: str,
    labels: Mapping[str, str],
    *,
    ip: str,
    namespace_labels: Mapping[str, str] | None = None,
    named_ports: Mapping[tuple[str, str], int] | None = None,
) -> Endpoint:
    """A pod; its namespace carries kubernetes.io/metadata.name, as the API server guarantees."""
    ns_labels = {**(namespace_labels or {}), "kubernetes.io/metadata.name": namespace}
    return Endpoint(ip=ip, namespace=namespace, labels=dict(labels), namespace_labels=ns_labels,
                    named_ports=dict(named_ports or {}))


def outside(ip: str) -> Endpoint:
    return Endpoint(ip=ip)


def named_ports_of(pod_spec: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """Named container ports of a pod spec (init containers too: a native sidecar's ports count)."""
    found: dict[tuple[str, str], int] = {}
    for c in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        for p in c.get("ports") or []:
            if "name" in p:
                found[(p["name"], p.get("protocol", "TCP"))] = p["containerPort"]
    return found


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: matchLabels and matchExpressions ANDed; the empty selector selects all."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {operator!r}")
    return True


def policy_types(policy: Policy) -> list[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def applies_to(policy: Policy, endpoint: Endpoint) -> bool:
    return (endpoint.is_pod and policy["metadata"].get("namespace") == endpoint.namespace
            and selects(policy["spec"]["podSelector"], endpoint.labels))


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        if address.version != block.version or address not in block:
            return False
        return not any(address in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except") or []
                       if ipaddress.ip_network(e).version == address.version)
    if not other.is_pod:
        return False  # selectors select pods only
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector") or {}, other.labels)


def _port_matches(rule_port: Mapping[str, Any], destination: Endpoint, port: int, protocol: str) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    if "port" not in rule_port:
        return True  # a protocol alone: every port
    wanted = rule_port["port"]
    if isinstance(wanted, str):
        return destination.named_ports.get((wanted, protocol)) == port
    return bool(wanted <= port <= rule_port.get("endPort", wanted))


def _rule_matches(rule: Mapping[str, Any], peers_key: str, policy_namespace: str, other: Endpoint,
                  destination: Endpoint, port: int, protocol: str) -> bool:
    peers: Sequence[Mapping[str, Any]] = rule.get(peers_key) or []
    ports: Sequence[Mapping[str, Any]] = rule.get("ports") or []
    return ((not peers or any(_peer_matches(p, policy_namespace, other) for p in peers))
            and (not ports or any(_port_matches(p, destination, port, protocol) for p in ports)))


def direction_allows(
    policies: Sequence[Policy], direction: Direction, *, local: Endpoint, other: Endpoint,
    destination: Endpoint, port: int, protocol: str,
) -> bool:
    """Whether `local`'s policies let the connection through in `direction` (`other` is the far end)."""
    relevant = [p for p in policies if applies_to(p, local) and direction in policy_types(p)]
    if not relevant:
        return True  # not isolated in this direction
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return any(_rule_matches(rule, peers_key, p["metadata"]["namespace"], other, destination, port, protocol)
               for p in relevant for rule in p["spec"].get(rules_key) or [])


def allows(
    policies: Sequence[Policy], *, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether a new connection from `source` to `destination`:`port` gets through: egress of the
    source and ingress of the destination must both allow it."""
    return (direction_allows(policies, "Egress", local=source, other=destination, destination=destination,
                             port=port, protocol=protocol)
            and direction_allows(policies, "Ingress", local=destination, other=source, destination=destination,
                                 port=port, protocol=protocol))

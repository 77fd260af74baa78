"""Kubernetes objects the tests create, as plain dicts (what `kubectl apply -f` would send)."""

from __future__ import annotations

from typing import Any

CASSANDRA_PORTS = [
    {"name": "intra-node", "port": 7000},
    {"name": "tls-intra-node", "port": 7001},
    {"name": "jmx", "port": 7199},
    {"name": "cql", "port": 9042},
]


def headless_service(name: str = "cassandra") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": CASSANDRA_PORTS},
    }


def statefulset(name: str = "cassandra", replicas: int = 3, *, parallel: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            # Parallel: the stand-in kubelet readies pods at once, so ordering adds only waiting.
            "podManagementPolicy": "Parallel" if parallel else "OrderedReady",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "cassandra",
                            "image": "cassandra:5.0",
                            "ports": [{"name": p["name"], "containerPort": p["port"]} for p in CASSANDRA_PORTS],
                        }
                    ],
                },
            },
        },
    }


def endpoint_slice(
    name: str, service: str, endpoints: list[tuple[str, str, bool]], *, address_type: str = "IPv4"
) -> dict[str, Any]:
    """A hand-managed slice (no Service selector owns it, so the EndpointSlice controller leaves it be)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": address_type,
        "ports": [{"name": "intra-node", "port": 7000, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": pod}}
            for pod, ip, ready in endpoints
        ],
    }


def role_for_endpointslices(
    name: str = "seedsvc", *, verbs: tuple[str, ...] = ("get", "list", "watch")
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": list(verbs)}],
    }


def role_binding(name: str, role: str, service_account: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def service_account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque"}

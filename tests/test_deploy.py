"""deploy/: every overlay renders, the real API server accepts every object, the RBAC is exactly
enough for the real sidecar code, and the Cassandra image's entrypoint renders a sound cassandra.yaml.

Rendering uses the kubectl built by seedsvc_devcluster/build.py (its embedded kustomize), so these tests
need the control-plane binaries even where no API server is involved; the entrypoint tests need
only bash.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from seedsvc import settings as seedsvc_settings
from seedsvc.api import SeedsUnavailable, current_seeds
from seedsvc.selection import Mode
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, SourceEvent, View
from seedsvc.sources.kubernetes import KubernetesSource
from seedsvc_devcluster import build
from seedsvc_devcluster import deploy_support as d
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneError
from seedsvc_devcluster.kubelet import READY_ANNOTATION, Kubelet
from tests import network_policy_semantics as netpol

WAIT_S = 60.0
"""Bound for anything the API server, the controllers or the kubelet stand-in do within seconds."""
CHECK_TIMEOUT_S = 20.0
"""`seedsvc check --timeout`: a handful of loopback requests."""

OVERLAYS = d.overlay_names()
FAKE_DOWNWARD = {"metadata.namespace": "cassandra", "metadata.name": "cassandra-0", "status.podIP": "10.1.2.3"}

controlplane = pytest.mark.controlplane


# --- rendering ----------------------------------------------------------------------------------------


@functools.cache
def _kubectl() -> Path:
    try:
        bin_dir = build.ensure_built()
    except build.BuildError as exc:
        pytest.fail(f"kubectl is needed to render deploy/ and comes from seedsvc_devcluster/go: {exc}", pytrace=False)
    kubectl = bin_dir / "kubectl"
    if not kubectl.is_file():
        pytest.fail(f"the control-plane build in {bin_dir} has no kubectl", pytrace=False)
    return kubectl


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return _kubectl()


@functools.cache
def rendered(overlay: str) -> tuple[d.Obj, ...]:
    return tuple(d.parse(d.kustomize(_kubectl(), d.OVERLAYS_DIR / overlay)))


def sidecar_env(workload: d.Obj) -> dict[str, str]:
    return d.resolve_env(d.container(d.pod_spec(workload), d.SIDECAR), FAKE_DOWNWARD)


def test_the_documented_overlays_exist() -> None:
    assert tuple(OVERLAYS) == d.EXPECTED_OVERLAYS, "update docs/deploy.md and EXPECTED_OVERLAYS together"


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_namespaced_objects_only(overlay: str) -> None:
    objects = list(rendered(overlay))
    kinds = sorted({o["kind"] for o in objects})
    assert not {"ClusterRole", "ClusterRoleBinding", "Namespace"} & set(kinds), kinds
    # One namespace for everything, so a Role can only ever grant inside the Cassandra namespace.
    assert {o["metadata"].get("namespace") for o in objects} == {"cassandra"}
    assert d.workloads(objects), f"{overlay} renders no workload"
    for workload in d.workloads(objects):
        spec = d.pod_spec(workload)
        assert [c["name"] for c in spec["initContainers"]] == [d.SIDECAR]
        assert [c["name"] for c in spec["containers"]] == [d.CASSANDRA]


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_is_headless_with_the_cassandra_ports(overlay: str) -> None:
    service = d.one(list(rendered(overlay)), "Service", "cassandra")
    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is False
    assert {(p["name"], p["port"]) for p in spec["ports"]} == {
        ("intra-node", 7000), ("tls-intra-node", 7001), ("jmx", 7199), ("cql", 9042)}
    services = {s["metadata"]["name"]: s for s in d.of_kind(list(rendered(overlay)), "Service")}
    for workload in d.workloads(list(rendered(overlay))):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"].items() <= labels.items(), workload["metadata"]["name"]
        if workload["kind"] == "StatefulSet":
            governing = services[workload["spec"]["serviceName"]]["spec"]
            assert governing["clusterIP"] == "None"
            assert governing["selector"].items() <= labels.items()


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str) -> None:
    for workload in d.workloads(list(rendered(overlay))):
        spec = d.pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in d.all_containers(spec):
            where = f"{workload['kind']}/{workload['metadata']['name']} container {c['name']}"
            security = c["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            added = security["capabilities"].get("add", [])
            assert added == (["IPC_LOCK"] if c["name"] == d.CASSANDRA else []), where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{where}: {bound}"
            assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"], where


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sidecar_is_native_and_gates_cassandra_start(overlay: str) -> None:
    for workload in d.workloads(list(rendered(overlay))):
        spec = d.pod_spec(workload)
        sidecar = d.container(spec, d.SIDECAR)
        assert sidecar["restartPolicy"] == "Always"  # a native sidecar (KEP-753), not a run-once init
        port_names = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
        startup, liveness = sidecar["startupProbe"]["httpGet"], sidecar["livenessProbe"]["httpGet"]
        assert (startup["path"], liveness["path"]) == ("/readyz", "/healthz")
        assert startup["port"] in port_names and liveness["port"] in port_names
        env = sidecar_env(workload)
        assert port_names[startup["port"]] == int(env.get("SEEDSVC_PORT", "8080"))
        assert "readinessProbe" not in sidecar, "a sidecar readiness probe would gate the Cassandra endpoint"
        cassandra = d.container(spec, d.CASSANDRA)
        assert cassandra["readinessProbe"]["tcpSocket"]["port"] == "cql"
        assert {p["name"] for p in cassandra["ports"]} == {"intra-node", "tls-intra-node", "jmx", "cql"}


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_references_point_at_earlier_entries(overlay: str) -> None:
    """Kubernetes expands $(VAR) only from entries listed before; a later one stays literal text."""
    for workload in d.workloads(list(rendered(overlay))):
        for c in d.all_containers(d.pod_spec(workload)):
            seen: set[str] = set()
            for entry in c.get("env") or []:
                for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", entry.get("value", "")):
                    assert name in seen, f"{c['name']}: {entry['name']} uses $({name}) before it is defined"
                seen.add(entry["name"])


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_sidecar_env_is_a_valid_seedsvc_configuration(overlay: str) -> None:
    known = {option.env for option in seedsvc_settings.OPTIONS}
    objects = list(rendered(overlay))
    service = d.one(objects, "Service", "cassandra")
    for workload in d.workloads(objects):
        spec = d.pod_spec(workload)
        env = sidecar_env(workload)
        assert set(env) <= known, f"unknown to seedsvc: {sorted(set(env) - known)}"
        loaded = seedsvc_settings.load(
            {}, env, serviceaccount_namespace=lambda _: None, resolv_conf=Path("/nonexistent"))
        watched = d.one(objects, "Service", loaded.discovery.service)
        assert watched["spec"]["clusterIP"] == "None"
        assert watched["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        if loaded.discovery.source == "dns":
            # CoreDNS answers NXDOMAIN for a headless Service without ready endpoints (docs/dns.md): the
            # first pod of a new cluster would never see a view it could seed itself from.
            assert watched["spec"]["publishNotReadyAddresses"] is True
        else:
            assert watched is service
        assert loaded.identity.pod_name and loaded.identity.pod_ip, "POD_NAME and POD_IP come from the downward API"
        if loaded.dns.srv_port_name is not None:
            assert loaded.dns.srv_port_name in {p["name"] for p in watched["spec"]["ports"]}
        state_mount = d.volume_mount_for(d.container(spec, d.SIDECAR), str(loaded.state.file))
        assert state_mount is not None, "the state file must be on a volume (the root filesystem is read-only)"
        volume = next(v for v in spec["volumes"] if v["name"] == state_mount["name"])
        assert "emptyDir" in volume, "the state file survives container restarts on an emptyDir"
        # The shim asks the sidecar of its own pod.
        cassandra_env = d.resolve_env(d.container(spec, d.CASSANDRA), FAKE_DOWNWARD)
        url = cassandra_env.get("SEEDSVC_SHIM_URL", "http://127.0.0.1:8080/seeds")
        host = loaded.http.host if loaded.http.host != "0.0.0.0" else "127.0.0.1"
        assert url == f"http://{host}:{loaded.http.port}/seeds"


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cassandra_env_is_read_by_the_entrypoint(overlay: str) -> None:
    script = d.ENTRYPOINT.read_text()
    read_elsewhere = {"MAX_HEAP_SIZE", "HEAP_NEWSIZE", "POD_NAME", "POD_NAMESPACE"}  # cassandra-env.sh, logs
    for workload in d.workloads(list(rendered(overlay))):
        cassandra = d.container(d.pod_spec(workload), d.CASSANDRA)
        for entry in cassandra["env"]:
            assert entry["name"] in read_elsewhere or entry["name"] in script, entry["name"]
        # Writable places for a read-only root filesystem: the rendered configuration ($CASSANDRA_CONF
        # in the Dockerfile), logs, /tmp, data, and the shim's cache on the data volume.
        conf = re.search(r"CASSANDRA_CONF=(\S+)", d.CASSANDRA_DOCKERFILE.read_text())
        assert conf is not None
        cache = d.resolve_env(cassandra, FAKE_DOWNWARD)["SEEDSVC_SHIM_CACHE_FILE"]
        for path in (conf.group(1), "/var/log/cassandra", "/tmp", "/var/lib/cassandra", cache):
            assert d.volume_mount_for(cassandra, path) is not None, f"{path} is not on a volume"
        assert d.volume_mount_for(cassandra, cache)["name"] == "data"  # type: ignore[index]


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_access_is_granted_exactly_where_the_source_needs_it(overlay: str) -> None:
    objects = list(rendered(overlay))
    roles = d.of_kind(objects, "Role")
    for workload in d.workloads(objects):
        spec = d.pod_spec(workload)
        env = sidecar_env(workload)
        token_volumes = [v["name"] for v in spec["volumes"]
                         if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))]
        mounts = {c["name"]: {m["name"] for m in c.get("volumeMounts") or []} for c in d.all_containers(spec)}
        if env.get("SEEDSVC_SOURCE", "kubernetes") == "kubernetes":
            assert len(token_volumes) == 1
            assert [name for name, mounted in mounts.items() if token_volumes[0] in mounted] == [d.SIDECAR]
            (role,) = roles
            resources = {"endpoints"} if env.get("SEEDSVC_API") == "endpoints" else (
                {"endpointslices", "endpoints"} if env.get("SEEDSVC_API", "auto") == "auto" else {"endpointslices"})
            expected = [
                {"apiGroups": ["discovery.k8s.io" if r == "endpointslices" else ""], "resources": [r],
                 "verbs": ["get", "list", "watch"]} for r in ("endpointslices", "endpoints") if r in resources]
            assert role["rules"] == expected
            binding = d.one(objects, "RoleBinding")
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                          "name": role["metadata"]["name"]}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"],
                                            "namespace": "cassandra"}]
        else:
            assert not token_volumes
            # No Role reaches the Cassandra pods' account (relay mode: only the relays' account has one).
            bound = [b for b in d.of_kind(objects, "RoleBinding")
                     if any(s["name"] == spec["serviceAccountName"] for s in b["subjects"])]
            assert not bound and (not roles or env.get("SEEDSVC_SOURCE") == "relay")
            for c in d.all_containers(spec):
                assert not any("serviceaccount" in m["mountPath"] for m in c.get("volumeMounts") or [])
        assert d.one(objects, "ServiceAccount", spec["serviceAccountName"])["automountServiceAccountToken"] is False


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_bootstrap_without_islands_is_possible_and_safe(overlay: str) -> None:
    """Exactly one way to start the first node, and the pod allowed to seed itself keeps its data.

    seedsvc lets a pod seed itself only if it has the bootstrap ordinal (0) or its address is the
    static CASSANDRA_SEEDS. A Deployment or DaemonSet pod has no ordinal, so such an overlay needs a
    one-pod StatefulSet or a static seed. A self-seeding pod that starts empty would found a second
    cluster, so it must not keep its data in an emptyDir.
    """
    objects = list(rendered(overlay))
    anchors = []
    for workload in d.workloads(objects):
        env = sidecar_env(workload)
        ordinal = int(env.get("SEEDSVC_BOOTSTRAP_ORDINAL", "0"))
        if env.get("CASSANDRA_SEEDS"):
            anchors.append(("static", workload))
            assert workload["kind"] == "DaemonSet" and d.pod_spec(workload).get("hostNetwork") is True, (
                "a static seed must be a stable address: a node IP with hostNetwork")
        if workload["kind"] == "StatefulSet" and ordinal < workload["spec"]["replicas"]:
            anchors.append(("ordinal", workload))
            templates = [t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])]
            assert "data" in templates, "the bootstrap pod must keep its data on a PersistentVolume"
    assert len(anchors) == 1, [(kind, w["metadata"]["name"]) for kind, w in anchors]
    if anchors[0][1]["kind"] == "DaemonSet":
        volume = next(v for v in d.pod_spec(anchors[0][1])["volumes"] if v["name"] == "data")
        assert volume["hostPath"]["type"] == "Directory"


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_fits_the_workload(overlay: str) -> None:
    objects = list(rendered(overlay))
    budget = d.one(objects, "PodDisruptionBudget", "cassandra")["spec"]
    if d.of_kind(objects, "DaemonSet"):
        # No scale subresource behind DaemonSet pods: only an integer minAvailable is honoured.
        assert "maxUnavailable" not in budget and isinstance(budget["minAvailable"], int)
    else:
        assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    for workload in d.workloads(objects):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert budget["selector"]["matchLabels"].items() <= labels.items()


# --- NetworkPolicies ------------------------------------------------------------------------------------
# No CNI runs here, so what the policies let through is asked of tests/network_policy_semantics.py, a
# model of the API's documented semantics with tests of its own below; the API server checks the
# objects themselves (test_api_server_accepts_every_object, test_documented_policy_patches_are_accepted)
# and test_policies_as_the_api_server_stores_them_mean_the_same reads them back.

CLIENT_LABEL = "seedsvc.io/cassandra-client"
PEER_DC_NAMESPACE_LABEL = "seedsvc.io/cassandra-cluster"
CASSANDRA_PORTS = ("intra-node", "tls-intra-node", "jmx", "cql", "seedsvc-http")
EXAMPLES = d.DEPLOY / "components" / "network-policies" / "examples"


def _on_pod_network(overlay: str) -> bool:
    return not any(d.pod_spec(w).get("hostNetwork") for w in d.workloads(list(rendered(overlay))))


POD_NETWORK_OVERLAYS = [o for o in OVERLAYS if o != "daemonset"]


def _cassandra_pods(objects: list[d.Obj], *, first_ip: int = 10) -> list[netpol.Endpoint]:
    """One pod of each Cassandra workload in namespace "cassandra", with its template's labels and ports."""
    return [netpol.pod("cassandra", w["spec"]["template"]["metadata"]["labels"], ip=f"10.244.0.{first_ip + i}",
                       named_ports=netpol.named_ports_of(d.pod_spec(w)))
            for i, w in enumerate(d.workloads(objects))]


def _port_numbers(endpoint: netpol.Endpoint) -> dict[str, int]:
    return {name: number for (name, protocol), number in endpoint.named_ports.items() if protocol == "TCP"}


def _reachable_ports(policies: list[d.Obj], source: netpol.Endpoint, destination: netpol.Endpoint) -> set[str]:
    numbers = _port_numbers(destination)
    return {name for name in CASSANDRA_PORTS
            if netpol.allows(policies, source=source, destination=destination, port=numbers[name])}


def _sources(objects: list[d.Obj]) -> dict[str, netpol.Endpoint]:
    """Who might knock on a Cassandra pod; EXPECTED_INGRESS says which of its ports each may reach."""
    cassandra_labels = d.workloads(objects)[0]["spec"]["template"]["metadata"]["labels"]
    peer_ports = netpol.named_ports_of(d.pod_spec(d.workloads(objects)[0]))
    return {
        "any pod of the namespace": netpol.pod("cassandra", {"app": "debug-shell"}, ip="10.244.1.1"),
        "client pod of the namespace": netpol.pod("cassandra", {CLIENT_LABEL: "true"}, ip="10.244.1.2"),
        "client pod, namespace not opted in": netpol.pod("apps", {CLIENT_LABEL: "true"}, ip="10.244.1.3"),
        "client pod, namespace opted in": netpol.pod(
            "shop", {CLIENT_LABEL: "true"}, ip="10.244.1.4", namespace_labels={CLIENT_LABEL: "true"}),
        "unlabelled pod, namespace opted in": netpol.pod(
            "shop", {"app": "web"}, ip="10.244.1.5", namespace_labels={CLIENT_LABEL: "true"}),
        "prometheus in monitoring": netpol.pod(
            "monitoring", {"app.kubernetes.io/name": "prometheus"}, ip="10.244.1.6"),
        "other pod in monitoring": netpol.pod("monitoring", {"app.kubernetes.io/name": "grafana"}, ip="10.244.1.7"),
        "prometheus elsewhere": netpol.pod("apps", {"app.kubernetes.io/name": "prometheus"}, ip="10.244.1.8"),
        "peer datacenter": netpol.pod("cassandra-dc2", cassandra_labels, ip="10.244.2.1", named_ports=peer_ports,
                                      namespace_labels={PEER_DC_NAMESPACE_LABEL: "cassandra"}),
        "another team's cassandra": netpol.pod("other-team", cassandra_labels, ip="10.244.2.2",
                                               named_ports=peer_ports),
        "outside the cluster": netpol.outside("203.0.113.7"),
    }


# What each source may reach on a Cassandra pod. JMX: nobody (it listens on loopback; nodetool runs in
# the pod). The sidecar's port: scrapers and peer DCs; the pod's own probes come from the node.
EXPECTED_INGRESS = {
    "any pod of the namespace": set(),
    "client pod of the namespace": {"cql"},
    "client pod, namespace not opted in": set(),
    "client pod, namespace opted in": {"cql"},
    "unlabelled pod, namespace opted in": set(),
    "prometheus in monitoring": {"seedsvc-http"},
    "other pod in monitoring": set(),
    "prometheus elsewhere": set(),
    "peer datacenter": {"seedsvc-http", "intra-node", "tls-intra-node"},
    "another team's cassandra": set(),
    "outside the cluster": set(),
}


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_exist_exactly_where_they_can_apply(overlay: str) -> None:
    """NetworkPolicies do not apply to hostNetwork pods: the daemonset overlay has none (its README says
    to firewall the node); every other overlay has them, and every Cassandra pod is selected by a
    policy of each direction, so each pod is isolated both ways."""
    objects = list(rendered(overlay))
    policies = d.of_kind(objects, "NetworkPolicy")
    assert bool(policies) == _on_pod_network(overlay) == (overlay in POD_NETWORK_OVERLAYS)
    for endpoint in _cassandra_pods(objects) if policies else []:
        for direction in ("Ingress", "Egress"):
            assert any(netpol.applies_to(p, endpoint) and direction in netpol.policy_types(p) for p in policies), (
                overlay, endpoint.labels, direction)


@controlplane
@pytest.mark.parametrize("overlay", POD_NETWORK_OVERLAYS)
def test_no_policy_opens_a_port_to_everyone(overlay: str) -> None:
    """An empty `from` means every source and an empty `ports` every port: the defaults use neither,
    and no ingress rule names addresses (ipBlock): whoever is let in is selected by labels."""
    for policy in d.of_kind(list(rendered(overlay)), "NetworkPolicy"):
        for rule in policy["spec"].get("ingress") or []:
            assert rule.get("from") and rule.get("ports"), policy["metadata"]["name"]
            assert not any("ipBlock" in peer for peer in rule["from"]), policy["metadata"]["name"]
        for rule in policy["spec"].get("egress") or []:
            assert rule.get("to") and rule.get("ports"), policy["metadata"]["name"]


@controlplane
@pytest.mark.parametrize("overlay", POD_NETWORK_OVERLAYS)
def test_each_port_of_a_cassandra_pod_is_open_only_to_whom_it_must_be(overlay: str) -> None:
    objects = list(rendered(overlay))
    policies = d.of_kind(objects, "NetworkPolicy")
    for destination in _cassandra_pods(objects):
        reachable = {name: _reachable_ports(policies, source, destination)
                     for name, source in _sources(objects).items()}
        assert reachable == EXPECTED_INGRESS, destination.labels


@controlplane
@pytest.mark.parametrize("overlay", POD_NETWORK_OVERLAYS)
def test_the_pods_of_one_datacenter_form_a_ring(overlay: str) -> None:
    """Every Cassandra workload's pod reaches every other's internode ports (a StatefulSet's and a
    Deployment's alike, in deployment-emptydir), and nothing else of them."""
    objects = list(rendered(overlay))
    policies = d.of_kind(objects, "NetworkPolicy")
    pods = _cassandra_pods(objects) + _cassandra_pods(objects, first_ip=20)  # two pods of each workload
    for source in pods:
        for destination in pods:
            if source is not destination:
                assert _reachable_ports(policies, source, destination) == {"intra-node", "tls-intra-node"}


@controlplane
@pytest.mark.parametrize("overlay", POD_NETWORK_OVERLAYS)
def test_cassandra_pods_reach_out_only_where_they_must(overlay: str) -> None:
    """Egress: the cluster DNS, the API server where the sidecar watches it (not in dns-only), the ring,
    peer datacenters; nothing else."""
    objects = list(rendered(overlay))
    policies = d.of_kind(objects, "NetworkPolicy")
    (source, *_) = _cassandra_pods(objects)
    watches_api = sidecar_env(d.workloads(objects)[0]).get("SEEDSVC_SOURCE", "kubernetes") == "kubernetes"
    dns = netpol.pod("kube-system", {"k8s-app": "kube-dns"}, ip="10.244.3.1")
    other_system_pod = netpol.pod("kube-system", {"k8s-app": "metrics-server"}, ip="10.244.3.2")
    peer = _sources(objects)["peer datacenter"]
    stranger = _sources(objects)["any pod of the namespace"]
    another_ring = _sources(objects)["another team's cassandra"]

    def out(destination: netpol.Endpoint, port: int, protocol: str = "TCP") -> bool:
        return netpol.direction_allows(policies, "Egress", local=source, other=destination,
                                       destination=destination, port=port, protocol=protocol)

    assert out(dns, 53, "UDP") and out(dns, 53, "TCP")
    assert not out(dns, 8080) and not out(other_system_pod, 53, "UDP")
    # The API server as a policy sees it: the control plane's address behind the "kubernetes" Service.
    for api_server, port in ((netpol.outside("192.0.2.10"), 6443), (netpol.outside("2001:db8::10"), 443)):
        assert out(api_server, port) is watches_api, (api_server, port)
        assert not out(api_server, 80)
    assert {name for name, number in _port_numbers(peer).items() if out(peer, number)} == {
        "seedsvc-http", "intra-node", "tls-intra-node"}
    assert not out(stranger, 8080) and not out(stranger, 9042)
    assert not any(out(another_ring, number) for number in _port_numbers(another_ring).values())
    assert not out(netpol.outside("203.0.113.7"), 9042)


def _render_with_patches(kubectl: Path, overlay: str, workdir: Path, patches: list[d.Obj], *,
                         namespace: str = "cassandra") -> str:
    """The overlay in a kustomization of one's own with the example patches copied in, as docs/deploy.md
    tells users to do it (kustomize reads patch files only from inside the kustomization)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for patch in patches:
        (workdir / patch["path"]).write_text((EXAMPLES / patch["path"]).read_text())
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "namespace": namespace, "resources": [os.path.relpath(d.OVERLAYS_DIR / overlay, workdir)],
                     "patches": patches}
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return d.kustomize(kubectl, workdir)


DOCUMENTED_PATCHES: list[d.Obj] = [
    {"path": "scrapers.yaml"},
    {"path": "kubernetes-api.yaml"},
    {"path": "remote-peer-datacenter.yaml", "target": {"kind": "NetworkPolicy", "name": "cassandra-peer-datacenters"}},
]


@controlplane
def test_documented_policy_patches_open_what_they_say(kubectl: Path, tmp_path: Path) -> None:
    objects = d.parse(_render_with_patches(kubectl, "statefulset", tmp_path, DOCUMENTED_PATCHES))
    policies = d.of_kind(objects, "NetworkPolicy")
    (cassandra, *_) = _cassandra_pods(objects)
    sources = _sources(objects)
    vmagent = netpol.pod("observability", {"app.kubernetes.io/name": "vmagent"}, ip="10.244.4.1")
    assert _reachable_ports(policies, vmagent, cassandra) == {"seedsvc-http"}
    assert _reachable_ports(policies, sources["prometheus in monitoring"], cassandra) == set()  # replaced

    remote = netpol.outside("198.51.100.20")
    assert _reachable_ports(policies, remote, cassandra) == {"seedsvc-http", "intra-node", "tls-intra-node"}
    for port in (8080, 7000, 7001):
        assert netpol.direction_allows(policies, "Egress", local=cassandra, other=remote, destination=remote,
                                       port=port, protocol="TCP")
    assert not netpol.direction_allows(policies, "Egress", local=cassandra, other=remote, destination=remote,
                                       port=9042, protocol="TCP")

    def to_api(ip: str) -> bool:
        api = netpol.outside(ip)
        return netpol.direction_allows(policies, "Egress", local=cassandra, other=api, destination=api,
                                       port=6443, protocol="TCP")

    assert to_api("192.0.2.10") and not to_api("192.0.2.11") and not to_api("2001:db8::10")
    # Everything the patches do not touch is as before.
    untouched = {k: v for k, v in EXPECTED_INGRESS.items() if k != "prometheus in monitoring"}
    assert {k: _reachable_ports(policies, sources[k], cassandra) for k in untouched} == untouched


def _policy(namespace: str, pod_selector: d.Obj, **spec: Any) -> d.Obj:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": {"podSelector": pod_selector, **spec}}


def test_policy_model_isolates_only_selected_pods_and_only_in_listed_directions() -> None:
    db = netpol.pod("db", {"app": "db"}, ip="10.0.0.1", named_ports={("cql", "TCP"): 9042})
    web = netpol.pod("db", {"app": "web"}, ip="10.0.0.2")
    deny_ingress = _policy("db", {"matchLabels": {"app": "db"}})  # no policyTypes, no rules: Ingress only
    assert netpol.policy_types(deny_ingress) == ["Ingress"]
    assert not netpol.allows([deny_ingress], source=web, destination=db, port=9042)
    assert netpol.allows([deny_ingress], source=db, destination=web, port=80)  # egress not isolated
    assert netpol.allows([deny_ingress], source=db, destination=netpol.outside("192.0.2.1"), port=443)
    in_other_namespace = {**deny_ingress, "metadata": {"name": "p", "namespace": "elsewhere"}}
    assert netpol.allows([in_other_namespace], source=web, destination=db, port=9042)
    allow_web = _policy("db", {}, ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                            "ports": [{"port": "cql"}]}])
    # Additive: the deny-all of one policy does not take away what another allows.
    assert netpol.allows([deny_ingress, allow_web], source=web, destination=db, port=9042)
    assert not netpol.allows([deny_ingress, allow_web], source=web, destination=db, port=9043)
    # An empty `from` and an absent `ports` match everything.
    open_all = _policy("db", {}, ingress=[{}])
    assert netpol.allows([deny_ingress, open_all], source=netpol.outside("203.0.113.1"), destination=db, port=1)


def test_policy_model_ands_selectors_in_one_entry_and_ors_entries() -> None:
    """The concept page's own example: namespaceSelector and podSelector in one `from` entry select pods
    that match both; as two entries, pods that match either."""
    db = netpol.pod("db", {"app": "db"}, ip="10.0.0.1")
    client_in_prod = netpol.pod("shop", {"role": "client"}, ip="10.0.0.2", namespace_labels={"user": "alice"})
    other_in_prod = netpol.pod("shop", {"role": "web"}, ip="10.0.0.3", namespace_labels={"user": "alice"})
    client_elsewhere = netpol.pod("lab", {"role": "client"}, ip="10.0.0.4")
    client_here = netpol.pod("db", {"role": "client"}, ip="10.0.0.5")
    namespaces, pods = {"matchLabels": {"user": "alice"}}, {"matchLabels": {"role": "client"}}
    both = [_policy("db", {}, ingress=[{"from": [{"namespaceSelector": namespaces, "podSelector": pods}]}])]
    either = [_policy("db", {}, ingress=[{"from": [{"namespaceSelector": namespaces}, {"podSelector": pods}]}])]
    reach = {name: (netpol.allows(both, source=s, destination=db, port=1),
                    netpol.allows(either, source=s, destination=db, port=1))
             for name, s in {"client_in_prod": client_in_prod, "other_in_prod": other_in_prod,
                             "client_elsewhere": client_elsewhere, "client_here": client_here}.items()}
    # podSelector alone selects in the policy's own namespace only.
    assert reach == {"client_in_prod": (True, True), "other_in_prod": (False, True),
                     "client_elsewhere": (False, False), "client_here": (False, True)}


def test_policy_model_ports_protocols_and_address_blocks() -> None:
    db = netpol.pod("db", {"app": "db"}, ip="10.0.0.1", named_ports={("cql", "TCP"): 9042, ("dns", "UDP"): 53})
    egress = _policy("db", {}, policyTypes=["Egress"], egress=[
        {"to": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}],
         "ports": [{"port": 8000, "endPort": 8010}, {"port": 53, "protocol": "UDP"}, {"port": "cql"}]}])
    assert netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.1"), port=8005)
    assert not netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.1"), port=8011)
    assert not netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.200"), port=8005)  # except
    assert not netpol.allows([egress], source=db, destination=netpol.outside("2001:db8::1"), port=8005)
    assert netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.1"), port=53, protocol="UDP")
    assert not netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.1"), port=53)  # TCP
    # A named port resolves on the destination pod: an address outside has no named ports.
    assert not netpol.allows([egress], source=db, destination=netpol.outside("192.0.2.1"), port=9042)
    ingress = _policy("db", {}, ingress=[{"from": [{"podSelector": {}}],
                                          "ports": [{"port": "dns", "protocol": "UDP"}]}])
    peer = netpol.pod("db", {}, ip="10.0.0.9")
    assert netpol.allows([ingress], source=peer, destination=db, port=53, protocol="UDP")
    assert not netpol.allows([ingress], source=peer, destination=db, port=53, protocol="TCP")
    # Selectors select pods, never addresses outside the cluster.
    assert not netpol.allows([ingress], source=netpol.outside("10.0.0.9"), destination=db, port=53, protocol="UDP")


# --- the real API server ----------------------------------------------------------------------------


@controlplane
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_server_accepts_every_object(
    overlay: str, kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    _assert_server_accepts(kubectl, control_plane, namespace,
                           d.in_namespace(kubectl, overlay, namespace, tmp_path / "kustomize"))


@controlplane
def test_documented_policy_patches_are_accepted(
    kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    manifest = _render_with_patches(kubectl, "statefulset", tmp_path, DOCUMENTED_PATCHES, namespace=namespace)
    _assert_server_accepts(kubectl, control_plane, namespace, manifest)


@controlplane
def test_policies_as_the_api_server_stores_them_mean_the_same(
    kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """Applied for real and read back, with the defaults the API server fills in (protocol, policy
    types): the model lets through exactly what it let through for the rendered files."""
    objects = d.parse(d.in_namespace(kubectl, "statefulset", namespace, tmp_path / "kustomize"))
    _apply(kubectl, control_plane, namespace, d.of_kind(objects, "NetworkPolicy"))
    stored = control_plane.api("GET", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")["items"]
    assert sorted(p["metadata"]["name"] for p in stored) == sorted(
        p["metadata"]["name"] for p in d.of_kind(objects, "NetworkPolicy"))
    for policy in stored:
        policy["metadata"]["namespace"] = "cassandra"  # where _sources() puts the Cassandra pods
    for destination in _cassandra_pods(objects):
        reachable = {name: _reachable_ports(stored, source, destination) for name, source in _sources(objects).items()}
        assert reachable == EXPECTED_INGRESS


def _assert_server_accepts(kubectl: Path, plane: ControlPlane, namespace: str, manifest: str) -> None:
    """Every object passes a server-side dry run with strict field validation, without warnings."""
    done = d.run_kubectl(
        kubectl,
        ["apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-", "-o", "name"],
        stdin=manifest,
        kubeconfig=plane.kubeconfig,
    )
    assert done.returncode == 0, f"the API server refused it:\n{done.stderr}"
    accepted = set(done.stdout.split())
    for obj in d.parse(manifest):
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        resource = obj["kind"].lower() + (f".{group}" if group else "")
        assert f"{resource}/{obj['metadata']['name']}" in accepted, (resource, sorted(accepted))
    assert not done.stderr.strip(), f"warnings from the API server:\n{done.stderr}"


def _apply(kubectl: Path, plane: ControlPlane, namespace: str, objects: list[d.Obj]) -> None:
    done = d.run_kubectl(kubectl, ["apply", "-n", namespace, "-f", "-"], stdin=d.dump(objects),
                         kubeconfig=plane.kubeconfig)
    assert done.returncode == 0, done.stderr


def _access_objects(kubectl: Path, overlay: str, namespace: str, workdir: Path) -> list[d.Obj]:
    objects = d.parse(d.in_namespace(kubectl, overlay, namespace, workdir))
    return d.of_kind(objects, "ServiceAccount", "Role", "RoleBinding", "Service")


def _wait_for_access(plane: ControlPlane, namespace: str, sa_namespace: str, verb: str, resource: str,
                     *, allowed: bool) -> None:
    """Wait (bounded) until the authorizer's view of the RBAC objects settles: RBAC is cached."""
    user = f"system:serviceaccount:{sa_namespace}:cassandra"
    group = "discovery.k8s.io" if resource == "endpointslices" else ""
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}",
                                          "system:authenticated"],
                 "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}},
    }
    deadline = time.monotonic() + WAIT_S
    while True:
        answer = plane.api("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        if bool(answer["status"].get("allowed")) == allowed:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} {verb} {resource} in {namespace}: still allowed={not allowed}")
        time.sleep(0.2)


def _endpoint_slice(namespace: str, ip: str = "127.0.10.250") -> d.Obj:
    """A hand-made slice for the Service, so the source has something to read without pods."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "cassandra-by-hand", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": "cassandra",
                                "endpointslice.kubernetes.io/managed-by": "seedsvc-tests"}},
        "addressType": "IPv4",
        "ports": [{"name": "intra-node", "port": 7000, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "zone": "zone-a",
                       "targetRef": {"kind": "Pod", "name": "cassandra-0", "namespace": namespace}}],
    }


def _sidecar_settings(
    plane: ControlPlane, overlay: str, namespace: str, sa_dir: Path
) -> tuple[Settings, dict[str, str]]:
    """Settings and environment of the sidecar exactly as the overlay configures it, pointed at the
    loopback API server with the given service-account files."""
    workload = d.workloads(list(rendered(overlay)))[0]
    env = {
        **sidecar_env(workload),
        **plane.incluster_env(),
        "POD_NAMESPACE": namespace,
        "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
        "SEEDSVC_STATE_FILE": str(sa_dir.parent / "state.json"),
        "SEEDSVC_CONNECT_TIMEOUT": "2",
        "SEEDSVC_REQUEST_TIMEOUT": "5",
        "SEEDSVC_BACKOFF_MAX": "1",
    }
    return seedsvc_settings.load({}, env), env


async def _first(settings: Settings, wanted: Callable[[SourceEvent], bool], what: str) -> SourceEvent:
    """Run the real Kubernetes source until an event matches; bounded, and always closed."""
    seen: list[SourceEvent] = []
    try:
        async with asyncio.timeout(WAIT_S):
            updates = cast(AsyncGenerator[SourceEvent, None], KubernetesSource(settings).updates())
            async with contextlib.aclosing(updates) as events:
                async for event in events:
                    seen.append(event)
                    if wanted(event):
                        return event
    except TimeoutError:
        pass
    raise AssertionError(f"no {what} within {WAIT_S:.0f}s; events: {seen[-6:]}")


def _seedsvc_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, "-m", "seedsvc", "check", "--timeout", str(CHECK_TIMEOUT_S)],
        env={**base, **env}, cwd=d.REPO, capture_output=True, text=True,
        timeout=CHECK_TIMEOUT_S + 30, check=False,
    )


@controlplane
async def test_manifest_rbac_lets_the_real_sidecar_watch_the_real_statefulset(
    kubectl: Path, control_plane: ControlPlane, kubelet: Kubelet, namespace: str, tmp_path: Path
) -> None:
    """The whole default overlay applied for real (the kubelet stand-in runs its pods), then the
    sidecar's own source code with a token of the manifest's ServiceAccount: it sees the three pods."""
    objects = d.parse(d.in_namespace(kubectl, "statefulset", namespace, tmp_path / "kustomize"))
    _apply(kubectl, control_plane, namespace, objects)
    await kubelet.async_wait_for_pods(namespace, "app.kubernetes.io/name=cassandra", count=3, ready=True,
                                      timeout=WAIT_S)
    _wait_for_access(control_plane, namespace, namespace, "watch", "endpointslices", allowed=True)
    sa_dir = control_plane.write_incluster_files(namespace, "cassandra", tmp_path / "serviceaccount")
    settings, env = _sidecar_settings(control_plane, "statefulset", namespace, sa_dir)
    assert settings.kubernetes.api == "endpointslices" and settings.discovery.source == "kubernetes"

    view = await _first(settings, lambda e: isinstance(e, View) and len(e.endpoints) == 3, "view of 3 pods")
    assert isinstance(view, View)
    assert sorted(e.pod or "" for e in view.endpoints) == ["cassandra-0", "cassandra-1", "cassandra-2"]

    checked = _seedsvc_check(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The default needs no v1 Endpoints permission, and has none.
    _wait_for_access(control_plane, namespace, namespace, "list", "endpoints", allowed=False)

    # What cassandra-1's shim would be served: the other two, never itself.
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in kubelet.list_pods(namespace)}
    as_pod_1 = settings.replace(pod_name="cassandra-1", pod_ip=ips["cassandra-1"])
    found = await current_seeds(as_pod_1, timeout=WAIT_S)
    assert (found.mode, set(found.seeds)) == (Mode.DISCOVERED, {ips["cassandra-0"], ips["cassandra-2"]})


@controlplane
@pytest.mark.parametrize("verb", ["watch", "list"])
async def test_without_a_verb_the_sidecar_fails_visibly(
    verb: str, kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    objects = _access_objects(kubectl, "statefulset", namespace, tmp_path / "kustomize")
    (role,) = d.of_kind(objects, "Role")
    role["rules"] = [{**rule, "verbs": [v for v in rule["verbs"] if v != verb]} for rule in role["rules"]]
    _apply(kubectl, control_plane, namespace, objects)
    control_plane.api("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                      _endpoint_slice(namespace))
    _wait_for_access(control_plane, namespace, namespace, verb, "endpointslices", allowed=False)
    _wait_for_access(control_plane, namespace, namespace, "get", "endpointslices", allowed=True)
    sa_dir = control_plane.write_incluster_files(namespace, "cassandra", tmp_path / "serviceaccount")
    settings, env = _sidecar_settings(control_plane, "statefulset", namespace, sa_dir)

    failure = await _first(settings, lambda e: isinstance(e, Failure), f"failure without {verb}")
    assert isinstance(failure, Failure)
    assert failure.reason == "forbidden", failure
    assert f"cannot {verb}" in failure.detail, failure.detail

    checked = _seedsvc_check(env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    denied = [line for line in checked.stdout.splitlines() if line.startswith("FAIL RBAC")]
    assert denied and f"denied: {verb}" in denied[0], checked.stdout


@controlplane
async def test_the_same_service_account_name_in_another_namespace_is_forbidden(
    kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    _apply(kubectl, control_plane, namespace, _access_objects(kubectl, "statefulset", namespace, tmp_path / "a"))
    control_plane.api("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                      _endpoint_slice(namespace))
    other = f"{namespace[:50]}-other"
    control_plane.api("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    try:
        # The identical objects, in the other namespace: its ServiceAccount "cassandra" may read the
        # other namespace's slices, never ours.
        _apply(kubectl, control_plane, other, _access_objects(kubectl, "statefulset", other, tmp_path / "b"))
        _wait_for_access(control_plane, other, other, "watch", "endpointslices", allowed=True)
        _wait_for_access(control_plane, namespace, other, "list", "endpointslices", allowed=False)
        sa_dir = control_plane.write_incluster_files(other, "cassandra", tmp_path / "serviceaccount")
        settings, env = _sidecar_settings(control_plane, "statefulset", namespace, sa_dir)
        assert settings.discovery.namespace == namespace

        failure = await _first(settings, lambda e: isinstance(e, (Failure, View)), "first event")
        assert isinstance(failure, Failure) and failure.reason == "forbidden", failure
        assert f"system:serviceaccount:{other}:cassandra" in failure.detail

        checked = _seedsvc_check(env)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert "denied: get, list, watch" in checked.stdout, checked.stdout
    finally:
        with contextlib.suppress(ControlPlaneError):
            control_plane.api("DELETE", f"/api/v1/namespaces/{other}")


@controlplane
async def test_endpoints_fallback_overlay_grants_what_auto_needs(
    kubectl: Path, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    _apply(kubectl, control_plane, namespace,
           _access_objects(kubectl, "endpoints-fallback", namespace, tmp_path / "kustomize"))
    control_plane.api("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                      _endpoint_slice(namespace))
    _wait_for_access(control_plane, namespace, namespace, "watch", "endpoints", allowed=True)
    sa_dir = control_plane.write_incluster_files(namespace, "cassandra", tmp_path / "serviceaccount")
    settings, env = _sidecar_settings(control_plane, "endpoints-fallback", namespace, sa_dir)
    assert settings.kubernetes.api == "auto"
    view = await _first(settings, lambda e: isinstance(e, View) and bool(e.endpoints), "view")
    assert isinstance(view, View) and [e.address for e in view.endpoints] == ["127.0.10.250"]
    checked = _seedsvc_check(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "RBAC get/list/watch endpoints in" in checked.stdout and "FAIL" not in checked.stdout


@controlplane
async def test_dns_only_lets_the_first_pod_of_a_new_cluster_seed_itself(
    kubectl: Path, control_plane: ControlPlane, kubelet: Kubelet, namespace: str, tmp_path: Path
) -> None:
    """The dns-only overlay for real, against the control plane's CoreDNS: cassandra-0 exists but is not
    ready (its Cassandra has not started: it waits for exactly this answer). The sidecar's DNS source
    must see it through cassandra-peers, so selection serves cassandra-0 itself; cassandra-1 is then
    served cassandra-0. Through the ready-only Service the same question gets NXDOMAIN and no list."""
    objects = d.parse(d.in_namespace(kubectl, "dns-only", namespace, tmp_path / "kustomize"))
    statefulset = d.one(objects, "StatefulSet")
    statefulset["spec"]["replicas"] = 2
    # The stand-in keeps every pod unready unless told otherwise: Cassandra never runs here.
    statefulset["spec"]["template"]["metadata"]["annotations"] = {READY_ANNOTATION: "false"}
    _apply(kubectl, control_plane, namespace, objects)
    (pod_0,) = await kubelet.async_wait_for_pods(namespace, "app.kubernetes.io/name=cassandra", 1, ready=False,
                                                 timeout=WAIT_S)
    ip_0 = pod_0["status"]["podIP"]

    def settings_of(pod: str, ip: str, **changes: str) -> Settings:
        env = d.resolve_env(d.container(d.pod_spec(statefulset), d.SIDECAR),
                            {"metadata.namespace": namespace, "metadata.name": pod, "status.podIP": ip})
        env |= {"SEEDSVC_DNS_NAMESERVER": f"{control_plane.dns[0]}:{control_plane.dns[1]}",
                "SEEDSVC_CLUSTER_DOMAIN": control_plane.cluster_domain, **changes}
        return seedsvc_settings.load({}, env)

    first = await current_seeds(settings_of("cassandra-0", ip_0), timeout=WAIT_S)
    assert (first.mode, first.seeds) == (Mode.BOOTSTRAP, (ip_0,)), first

    with pytest.raises(SeedsUnavailable, match=r"(?i)nxdomain"):
        await current_seeds(settings_of("cassandra-0", ip_0, CASSANDRA_SERVICE="cassandra"), timeout=5)

    await kubelet.async_set_ready(namespace, "cassandra-0", True)  # OrderedReady: now cassandra-1 is created
    pods = await kubelet.async_wait_for_pods(namespace, "statefulset.kubernetes.io/pod-name=cassandra-1", 1,
                                             ready=False, timeout=WAIT_S)
    second = await current_seeds(settings_of("cassandra-1", pods[0]["status"]["podIP"]), timeout=WAIT_S)
    assert (second.mode, second.seeds) == (Mode.DISCOVERED, (ip_0,)), second


# --- the Cassandra image's entrypoint -----------------------------------------------------------------


@pytest.fixture
def entrypoint_env(tmp_path: Path) -> dict[str, str]:
    """A template directory like the image's /etc/cassandra, an output directory, and a fake
    `cassandra` on PATH that records how it was started instead of starting a JVM."""
    template = tmp_path / "etc-cassandra"
    template.mkdir()
    (template / "cassandra.yaml").write_text(d.CASSANDRA_YAML_TEMPLATE)
    (template / "cassandra-rackdc.properties").write_text(d.CASSANDRA_RACKDC_TEMPLATE)
    (template / "jvm-server.options").write_text("-Xss256k\n")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "cassandra"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$*" "$JVM_EXTRA_OPTS" > "$CASSANDRA_CONF/started"\n')
    fake.chmod(0o755)
    return {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "CASSANDRA_CONF": str(tmp_path / "run-cassandra" / "conf"),
        "SEEDSVC_CONF_TEMPLATE": str(template),
        "SEEDSVC_CONF_OVERRIDES": str(tmp_path / "overrides"),
        "POD_IP": "10.1.2.3",
    }


def _entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(d.ENTRYPOINT), *args], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def _rendered_yaml(env: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(Path(env["CASSANDRA_CONF"], "cassandra.yaml").read_text())  # type: ignore[no-any-return]


def test_entrypoint_is_valid_bash() -> None:
    done = subprocess.run(["bash", "-n", str(d.ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_entrypoint_points_cassandra_at_the_shim(entrypoint_env: dict[str, str]) -> None:
    env = {**entrypoint_env, "CASSANDRA_CLUSTER_NAME": "prod ring", "CASSANDRA_NUM_TOKENS": "16",
           "CASSANDRA_DC": "dc1", "CASSANDRA_RACK": "zone-a", "SEEDSVC_SHIM_STARTUP_WAIT_MS": "30000"}
    done = _entrypoint(env)
    assert done.returncode == 0, done.stderr
    config = _rendered_yaml(env)
    assert config["seed_provider"] == [{
        "class_name": "io.seedsvc.cassandra.SidecarSeedProvider",
        "parameters": [{"url": "http://127.0.0.1:8080/seeds",
                        "cache_file": "/var/lib/cassandra/seedsvc-seeds.cache",
                        "startup_wait_ms": "30000"}],
    }]
    assert (config["cluster_name"], config["num_tokens"]) == ("prod ring", 16)
    assert (config["listen_address"], config["broadcast_address"]) == ("10.1.2.3", "10.1.2.3")
    assert (config["rpc_address"], config["broadcast_rpc_address"]) == ("0.0.0.0", "10.1.2.3")
    assert config["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    # Everything else exactly as in the template: authentication and encryption are not touched.
    template = yaml.safe_load(d.CASSANDRA_YAML_TEMPLATE)
    changed = {"seed_provider", "cluster_name", "listen_address", "broadcast_address", "rpc_address",
               "broadcast_rpc_address", "endpoint_snitch", "num_tokens"}
    assert {k: v for k, v in config.items() if k not in changed} == {
        k: v for k, v in template.items() if k not in changed}
    conf = Path(env["CASSANDRA_CONF"])
    assert (conf / "cassandra-rackdc.properties").read_text() == "dc=dc1\nrack=zone-a\n"
    assert (conf / "jvm-server.options").read_text() == "-Xss256k\n"
    assert (conf / "started").read_text().splitlines()[0] == "-f"  # exec'd `cassandra -f`
    template_dir = Path(env["SEEDSVC_CONF_TEMPLATE"])
    assert (template_dir / "cassandra.yaml").read_text() == d.CASSANDRA_YAML_TEMPLATE


def test_entrypoint_passes_every_shim_parameter_and_overrides(entrypoint_env: dict[str, str]) -> None:
    overrides = Path(entrypoint_env["SEEDSVC_CONF_OVERRIDES"])
    overrides.mkdir()
    # A ConfigMap volume: files are symlinks into a timestamped ..data directory.
    data = overrides / "..2026_11_27_00_00_00.000000000"
    data.mkdir()
    changed = d.CASSANDRA_YAML_TEMPLATE.replace("concurrent_reads: 32", "concurrent_reads: 64")
    (data / "cassandra.yaml").write_text(changed)
    (overrides / "..data").symlink_to(data.name)
    (overrides / "cassandra.yaml").symlink_to("..data/cassandra.yaml")
    env = {**entrypoint_env, "SEEDSVC_SHIM_URL": "http://10.1.2.3:8080/seeds",
           "SEEDSVC_SHIM_CACHE_FILE": "/var/lib/cassandra/seeds.cache", "SEEDSVC_SHIM_CONNECT_TIMEOUT_MS": "250",
           "SEEDSVC_SHIM_READ_TIMEOUT_MS": "750", "SEEDSVC_SHIM_STARTUP_WAIT_MS": "0",
           "SEEDSVC_SHIM_LIVE_RELOAD": "false", "SEEDSVC_SHIM_POLL_WAIT_SECONDS": "20",
           "CASSANDRA_SEEDS": "10.0.0.1,[fd00::1]:7000", "CASSANDRA_REPLACE_ADDRESS": "10.9.9.9"}
    done = _entrypoint(env)
    assert done.returncode == 0, done.stderr
    config = _rendered_yaml(env)
    assert config["concurrent_reads"] == 64
    assert config["seed_provider"][0]["parameters"] == [{
        "url": "http://10.1.2.3:8080/seeds", "cache_file": "/var/lib/cassandra/seeds.cache",
        "connect_timeout_ms": "250", "read_timeout_ms": "750", "startup_wait_ms": "0", "live_reload": "false",
        "poll_wait_seconds": "20", "seeds": "10.0.0.1,[fd00::1]:7000"}]
    conf = Path(env["CASSANDRA_CONF"])
    assert not list(conf.glob("..*")), "ConfigMap bookkeeping entries must not land in the configuration"
    started = (conf / "started").read_text().splitlines()
    assert started[1] == "-Dcassandra.replace_address_first_boot=10.9.9.9"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CASSANDRA_CLUSTER_NAME", "x'\nauthenticator: AllowAllAuthenticator"),
        ("CASSANDRA_CLUSTER_NAME", 'a"b'),
        ("POD_IP", "10.1.2.3; rm -rf /"),
        ("CASSANDRA_NUM_TOKENS", "0"),
        ("CASSANDRA_NUM_TOKENS", "16x"),
        ("SEEDSVC_SHIM_URL", "http://127.0.0.1:8080/seeds\"\n  - x"),
        ("SEEDSVC_SHIM_URL", "file:///etc/passwd"),
        ("SEEDSVC_SHIM_STARTUP_WAIT_MS", "-1"),
        ("SEEDSVC_SHIM_LIVE_RELOAD", "yes"),
        ("CASSANDRA_SEEDS", "10.0.0.1\"; x"),
        ("CASSANDRA_DC", "dc1"),  # without CASSANDRA_RACK
        ("CASSANDRA_ENDPOINT_SNITCH", "Gossiping Snitch"),
    ],
)
def test_entrypoint_refuses_bad_values_before_writing(entrypoint_env: dict[str, str], name: str, value: str) -> None:
    done = _entrypoint({**entrypoint_env, name: value})
    assert done.returncode == 2, done.stderr
    assert name in done.stderr.splitlines()[-1], done.stderr
    conf = Path(entrypoint_env["CASSANDRA_CONF"])
    assert not (conf / "cassandra.yaml").exists() and not (conf / "started").exists()


def test_entrypoint_needs_an_address(entrypoint_env: dict[str, str]) -> None:
    env = {k: v for k, v in entrypoint_env.items() if k != "POD_IP"}
    done = _entrypoint(env)
    assert done.returncode == 2 and "POD_IP" in done.stderr


def test_entrypoint_runs_other_commands_without_rendering(entrypoint_env: dict[str, str]) -> None:
    done = _entrypoint(entrypoint_env, "echo", "hello")
    assert (done.returncode, done.stdout) == (0, "hello\n")
    assert not Path(entrypoint_env["CASSANDRA_CONF"], "cassandra.yaml").exists()


@controlplane
def test_relay_overlay_grants_the_endpointslice_watch_to_the_relays_alone() -> None:
    objects = list(rendered("relay"))
    relay = d.one(objects, "Deployment", "seedsvc-relay")
    spec = d.pod_spec(relay)
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert "POD_NAME" not in env and "POD_IP" not in env, "a relay has no pod identity"
    assert env["SEEDSVC_SOURCE"] == "kubernetes"
    assert relay["spec"]["replicas"] >= 2
    assert d.one(objects, "PodDisruptionBudget", "seedsvc-relay")["spec"]["maxUnavailable"] == 1
    (role,) = d.of_kind(objects, "Role")
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                              "verbs": ["get", "list", "watch"]}]
    (binding,) = d.of_kind(objects, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"],
                                    "namespace": "cassandra"}]
    service = d.one(objects, "Service", "seedsvc-relay")
    assert service["spec"]["selector"].items() <= relay["spec"]["template"]["metadata"]["labels"].items()
    (cassandra,) = d.workloads(objects)
    sidecar = {e["name"]: e.get("value") for e in d.container(d.pod_spec(cassandra), d.SIDECAR)["env"]}
    assert sidecar["SEEDSVC_RELAY_URLS"] == f"http://seedsvc-relay:{service['spec']['ports'][0]['port']}"
    assert sidecar["CASSANDRA_SERVICE_NUM_SEEDS"] == env["CASSANDRA_SERVICE_NUM_SEEDS"]

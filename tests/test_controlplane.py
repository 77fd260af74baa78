"""The loopback control plane is a real one: controllers, EndpointSlices, DNS, RBAC and etcd behave as
in a cluster. These tests guard the harness every integration test stands on."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneError, ControlPlaneOptions, kube_json
from seedsvc_devcluster.kubelet import TERMINATION_DELAY_ANNOTATION, Kubelet, KubeletOptions, Pod, dump, poll
from tests.cluster_fixtures import ControlPlaneFactory

pytestmark = pytest.mark.controlplane

SERVICE = "cassandra"
LABELS = {"app": "cassandra"}
SELECTOR = "app=cassandra"
PORTS = {"intra-node": 7000, "cql": 9042}
WAIT_S = 60.0  # bound for every convergence below; on loopback each takes about a second


def create_cassandra(
    api: client.ApiClient, namespace: str, replicas: int = 3, readiness_probe: dict[str, Any] | None = None
) -> None:
    """A headless Service and a StatefulSet shaped like a Cassandra deployment."""
    container: dict[str, Any] = {
        "name": "cassandra",
        "image": "cassandra:5.0",
        "ports": [{"name": name, "containerPort": port} for name, port in PORTS.items()],
    }
    if readiness_probe is not None:
        container["readinessProbe"] = readiness_probe
    kube_json(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "labels": LABELS},
            "spec": {
                "clusterIP": "None",
                "selector": LABELS,
                "ports": [{"name": name, "port": port, "targetPort": port} for name, port in PORTS.items()],
            },
        },
    )
    kube_json(
        api,
        "POST",
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": SERVICE},
            "spec": {
                "serviceName": SERVICE,
                "replicas": replicas,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": {"containers": [container]},
                },
            },
        },
    )


def endpoint_slices(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    slices = kube_json(
        api,
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        query={"labelSelector": f"kubernetes.io/service-name={SERVICE}"},
    )
    return list(slices["items"])


def endpoints_by_ip(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        address: endpoint
        for slice_ in endpoint_slices(api, namespace)
        for endpoint in slice_.get("endpoints") or []
        for address in endpoint["addresses"]
    }


def wait_for_endpoints(
    api: client.ApiClient, namespace: str, expected_ready: dict[str, bool]
) -> dict[str, dict[str, Any]]:
    """Wait until the service's slices hold exactly these IPs with these `ready` conditions."""

    def converged() -> dict[str, dict[str, Any]] | None:
        endpoints = endpoints_by_ip(api, namespace)
        actual = {ip: bool(e.get("conditions", {}).get("ready")) for ip, e in endpoints.items()}
        return endpoints if actual == expected_ready else None

    return poll(converged, timeout=WAIT_S, what=f"EndpointSlices with {expected_ready}")


@pytest.fixture
def cassandra_pods(kube_api: client.ApiClient, kubelet: Kubelet, namespace: str) -> list[Pod]:
    create_cassandra(kube_api, namespace)
    return kubelet.wait_for_pods(namespace, SELECTOR, 3, timeout=WAIT_S)


def test_statefulset_pods_run_on_distinct_loopback_ips_across_zones(cassandra_pods: list[Pod]) -> None:
    assert [p["metadata"]["name"] for p in cassandra_pods] == ["cassandra-0", "cassandra-1", "cassandra-2"]
    ips = [p["status"]["podIP"] for p in cassandra_pods]
    assert len(set(ips)) == 3
    assert all(ip.startswith("127.") for ip in ips), ips
    assert len({p["spec"]["nodeName"] for p in cassandra_pods}) == 3


def test_stand_in_watches_without_errors(kubelet: Kubelet, cassandra_pods: list[Pod]) -> None:
    # A broken watch would go unnoticed otherwise: the stand-in relists and still gets pods running.
    assert kubelet.errors == []


def test_endpointslices_follow_pod_readiness(
    kube_api: client.ApiClient, kubelet: Kubelet, namespace: str, cassandra_pods: list[Pod]
) -> None:
    ip_of = {p["metadata"]["name"]: p["status"]["podIP"] for p in cassandra_pods}
    endpoints = wait_for_endpoints(kube_api, namespace, dict.fromkeys(ip_of.values(), True))

    slices = endpoint_slices(kube_api, namespace)
    assert {port["name"]: port["port"] for s in slices for port in s.get("ports") or []} == PORTS
    first = endpoints[ip_of["cassandra-0"]]
    assert first["hostname"] == "cassandra-0", dump(first)
    assert first["targetRef"]["name"] == "cassandra-0", dump(first)
    assert first["zone"] in {"zone-a", "zone-b", "zone-c"}, dump(first)

    kubelet.set_ready(namespace, "cassandra-1", False)
    flipped = wait_for_endpoints(
        kube_api, namespace, {**dict.fromkeys(ip_of.values(), True), ip_of["cassandra-1"]: False}
    )
    assert flipped[ip_of["cassandra-1"]]["conditions"]["serving"] is False

    kubelet.set_ready(namespace, "cassandra-1", True)
    wait_for_endpoints(kube_api, namespace, dict.fromkeys(ip_of.values(), True))


def test_deleted_pod_is_terminating_then_replaced_with_a_new_ip(
    kube_api: client.ApiClient, kubelet: Kubelet, namespace: str, cassandra_pods: list[Pod]
) -> None:
    victim = cassandra_pods[2]
    old_ip, old_uid = victim["status"]["podIP"], victim["metadata"]["uid"]
    # Hold finalisation long enough to see the endpoint as terminating; the test waits on conditions.
    delay = {"metadata": {"annotations": {TERMINATION_DELAY_ANNOTATION: "3"}}}
    kube_json(
        kube_api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/cassandra-2",
        delay,
        content_type="application/merge-patch+json",
    )
    kubelet.delete_pod(namespace, "cassandra-2")

    def terminating() -> bool:
        endpoint = endpoints_by_ip(kube_api, namespace).get(old_ip, {})
        return bool(endpoint.get("conditions", {}).get("terminating"))

    poll(terminating, timeout=WAIT_S, what=f"{old_ip} to be terminating")
    kubelet.wait_for_pod_gone(namespace, "cassandra-2", uid=old_uid, timeout=WAIT_S)
    pods = kubelet.wait_for_pods(namespace, SELECTOR, 3, timeout=WAIT_S)
    new_ip = pods[2]["status"]["podIP"]
    assert new_ip != old_ip
    wait_for_endpoints(kube_api, namespace, {p["status"]["podIP"]: True for p in pods})


async def test_stand_in_helpers_work_from_async_tests(
    kube_api: client.ApiClient, kubelet: Kubelet, namespace: str
) -> None:
    await asyncio.to_thread(create_cassandra, kube_api, namespace, 1)
    [pod] = await kubelet.async_wait_for_pods(namespace, SELECTOR, 1, timeout=WAIT_S)
    await kubelet.async_set_ready(namespace, pod["metadata"]["name"], False)
    await kubelet.async_wait_for_pods(namespace, SELECTOR, 1, ready=False, timeout=WAIT_S)


# --- DNS ------------------------------------------------------------------------------------------------


def resolver_for(plane: ControlPlane) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [plane.dns[0]]
    resolver.port = plane.dns[1]
    resolver.lifetime = 2.0
    return resolver


def resolve(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> set[str] | None:
    """The answer as text, or None while CoreDNS has not caught up (NXDOMAIN, empty answer)."""
    try:
        answer = resolver.resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return {rdata.to_text() for rdata in answer}


def test_coredns_answers_service_srv_and_pod_hostnames(
    control_plane: ControlPlane, namespace: str, cassandra_pods: list[Pod]
) -> None:
    resolver = resolver_for(control_plane)
    domain = f"{SERVICE}.{namespace}.svc.{control_plane.cluster_domain}"
    ips = {p["status"]["podIP"] for p in cassandra_pods}

    poll(lambda: resolve(resolver, domain, "A") == ips, timeout=WAIT_S, what=f"A {domain} -> {ips}")

    srv = poll(lambda: resolve(resolver, f"_cql._tcp.{domain}", "SRV"), timeout=WAIT_S, what="SRV records")
    targets = {(int(r.split()[2]), r.split()[3]) for r in srv}
    assert targets == {(9042, f"cassandra-{i}.{domain}.") for i in range(3)}, srv

    pod0 = cassandra_pods[0]["status"]["podIP"]
    assert resolve(resolver, f"cassandra-0.{domain}", "A") == {pod0}


# --- service-account tokens and RBAC --------------------------------------------------------------------


def get_as(plane: ControlPlane, token: str, path: str) -> int:
    """HTTP status of GET `path` with a bearer token (no client library: nothing cached between calls)."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    request = urllib.request.Request(plane.server + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def create_service_account(api: client.ApiClient, namespace: str, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    kube_json(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)


def test_service_account_needs_a_role_to_list_endpointslices(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    create_service_account(kube_api, namespace, "seedsvc")
    incluster = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "serviceaccount")
    assert (incluster / "namespace").read_text() == namespace
    assert (incluster / "ca.crt").read_bytes() == control_plane.ca_file.read_bytes()
    token = (incluster / "token").read_text()
    path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"

    assert get_as(control_plane, token, path) == 403

    # The equivalent of the Role seedsvc needs; deploy/'s own RBAC is covered by the deploy tests.
    kube_json(
        kube_api,
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "seedsvc"},
            "rules": [
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    kube_json(
        kube_api,
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "seedsvc"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "seedsvc"},
            "subjects": [{"kind": "ServiceAccount", "name": "seedsvc", "namespace": namespace}],
        },
    )
    # RBAC is read from an informer, so the grant shows up a moment later.
    poll(lambda: get_as(control_plane, token, path) == 200, timeout=WAIT_S, what="200 after RoleBinding")
    assert get_as(control_plane, token, f"/api/v1/namespaces/{namespace}/secrets") == 403


def test_token_bound_to_a_secret_dies_with_it(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str
) -> None:
    create_service_account(kube_api, namespace, "seedsvc")
    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    kube_json(kube_api, "POST", secrets, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token-anchor"}})
    token = control_plane.mint_token(namespace, "seedsvc", expiration_seconds=600, bound_secret="token-anchor")
    # Any authenticated identity may ask who it is; a revoked token gets 401.
    whoami = "/apis/authentication.k8s.io/v1"
    assert get_as(control_plane, token, whoami) == 200

    kube_json(kube_api, "DELETE", f"{secrets}/token-anchor")
    poll(lambda: get_as(control_plane, token, whoami) == 401, timeout=WAIT_S, what="401 after the Secret is gone")


# --- etcd compaction without the watch cache ------------------------------------------------------------


@pytest.fixture(scope="module")
def uncached_plane(control_plane_factory: ControlPlaneFactory) -> Iterator[ControlPlane]:
    # etcd_compaction_interval=0: only the test compacts, so the outcome is not a race with a timer.
    plane = control_plane_factory(ControlPlaneOptions(watch_cache=False, etcd_compaction_interval="0"))
    yield plane
    plane.stop()


def first_watch_event(plane: ControlPlane, path: str, resource_version: str) -> dict[str, Any]:
    """The first event of a watch from `resource_version` (or the HTTP error as a Status object).

    The server ends the watch after a second; an error event ends it at once.
    """
    query = f"?watch=true&resourceVersion={resource_version}&timeoutSeconds=1"
    try:
        body = plane.api("GET", path + query, raw=True)
    except ControlPlaneError as exc:  # a 410 before the stream starts
        return {"type": "HTTP", "object": {"message": str(exc)}}
    lines = [line for line in str(body).splitlines() if line.strip()]
    assert lines, f"watch from {resource_version} ended without any event"
    return dict(json.loads(lines[0]))


def test_compaction_without_watch_cache_makes_old_resource_versions_gone(uncached_plane: ControlPlane) -> None:
    path = "/api/v1/namespaces/default/configmaps"
    created = uncached_plane.api(
        "POST",
        path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compaction-probe"}, "data": {"n": "0"}},
    )
    old_rv = created["metadata"]["resourceVersion"]
    for n in range(1, 4):
        uncached_plane.api(
            "PUT",
            f"{path}/compaction-probe",
            {**created, "data": {"n": str(n)}, "metadata": {**created["metadata"], "resourceVersion": None}},
        )

    before = first_watch_event(uncached_plane, path, old_rv)
    assert before["type"] in ("ADDED", "MODIFIED"), dump(before)

    uncached_plane.compact_etcd()

    after = first_watch_event(uncached_plane, path, old_rv)
    assert after["type"] in ("ERROR", "HTTP"), dump(after)
    assert after["object"].get("code") == 410 or "410" in after["object"].get("message", ""), dump(after)


def test_apiserver_restarts_on_the_same_address(uncached_plane: ControlPlane) -> None:
    server = uncached_plane.server
    uncached_plane.stop_apiserver()
    assert not uncached_plane.exists("/api")
    uncached_plane.start_apiserver()
    assert uncached_plane.server == server
    assert uncached_plane.exists("/api/v1/namespaces/default")


# --- Endpoints fallback cluster, with readiness probes run by the stand-in ---------------------------------


@pytest.fixture(scope="module")
def endpoints_only(control_plane_factory: ControlPlaneFactory) -> Iterator[tuple[ControlPlane, Kubelet]]:
    plane = control_plane_factory(ControlPlaneOptions(runtime_config="discovery.k8s.io/v1=false"))
    stand_in = Kubelet.from_kubeconfig(plane.kubeconfig, KubeletOptions(probe=True)).start()
    yield plane, stand_in
    stand_in.stop()
    stand_in.api_client.close()  # type: ignore[no-untyped-call]  # untyped upstream
    plane.stop()


def v1_endpoints(api: client.ApiClient, namespace: str) -> tuple[set[str], set[str]]:
    """(ready, not ready) addresses of the service's v1 Endpoints."""
    try:
        endpoints = kube_json(api, "GET", f"/api/v1/namespaces/{namespace}/endpoints/{SERVICE}")
    except ApiException as exc:
        if exc.status == 404:
            return set(), set()
        raise
    subsets = endpoints.get("subsets") or []
    ready = {a["ip"] for s in subsets for a in s.get("addresses") or []}
    not_ready = {a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []}
    return ready, not_ready


def test_without_discovery_v1_endpoints_follow_tcp_readiness_probes(
    endpoints_only: tuple[ControlPlane, Kubelet],
) -> None:
    plane, stand_in = endpoints_only
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]  # untyped upstream
    namespace = "fallback"
    kube_json(
        api, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    poll(
        lambda: plane.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
        timeout=WAIT_S,
        what="default ServiceAccount",
    )
    assert not plane.exists("/apis/discovery.k8s.io/v1")

    create_cassandra(api, namespace, replicas=1, readiness_probe={"tcpSocket": {"port": "intra-node"}})
    # Nothing listens yet: the probe fails, so the pod runs but is not ready.
    pod = stand_in.wait_for_pods(namespace, SELECTOR, 1, ready=False, timeout=WAIT_S)[0]
    ip = pod["status"]["podIP"]
    poll(lambda: v1_endpoints(api, namespace) == (set(), {ip}), timeout=WAIT_S, what=f"{ip} not ready in Endpoints")

    with socket.create_server((ip, PORTS["intra-node"])):
        stand_in.wait_for_pods(namespace, SELECTOR, 1, ready=True, timeout=WAIT_S)
        poll(lambda: v1_endpoints(api, namespace) == ({ip}, set()), timeout=WAIT_S, what=f"{ip} ready in Endpoints")
    api.close()


def test_coredns_cache_is_off_unless_asked_for(tmp_path: Path) -> None:
    def corefile(options: ControlPlaneOptions) -> str:
        plane = ControlPlane(tmp_path, options)
        plane._allocate_ports()  # the Corefile names the ports; nothing is started
        return plane.corefile(tmp_path / "kubeconfig")

    assert not [line for line in corefile(ControlPlaneOptions()).splitlines() if line.strip().startswith("cache")]
    assert "    cache 30\n" in corefile(ControlPlaneOptions(coredns_cache_s=30))

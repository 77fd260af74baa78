"""deploy/ on real kubelets: containerd, runc, one network namespace per pod, images from deploy/images.

One module-scoped cluster: three real nodes (zone-a/b/c) of the pod layer (seedsvc_devcluster/node)
on the project's control plane, the sidecar and Cassandra images built from deploy/images by
seedsvc_devcluster.images (Cassandra on the stand-in base made from Maven Central's jars; the official
image cannot be had here). The overlays are applied unchanged but for the image names. The tests run
in file order and build on each other: the StatefulSet forms its ring, scales, loses pod 0, is cut
off by a partition, then gives its resources to the dns-only overlay.

Slow by nature (each Cassandra JVM boots in a container on a shared 2-core machine); every wait is
bounded generously and says what it waited for.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from seedsvc_devcluster import deploy_support as d
from seedsvc_devcluster import polling
from seedsvc_devcluster.images import ensure_images
from seedsvc_devcluster.kubelet import pod_is_ready
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.node import network
from seedsvc_devcluster.node.addressing import kubernetes_service_ip
from seedsvc_devcluster.node.configs import KUBELET_SYSCTLS
from seedsvc_devcluster.node.observe import Kubectl, KubectlError, sidecar_json
from seedsvc_devcluster.node.pod_layer import PodLayerOptions, cut_pod, heal_pod
from tests.cluster_fixtures import _binaries

pytestmark = [pytest.mark.controlplane, pytest.mark.podlayer, pytest.mark.images, pytest.mark.timeout(1800)]

T = TypeVar("T")
NAMESPACE = "cassandra"
DNS_NAMESPACE = "cassandra-dns"
SELECTOR = "app.kubernetes.io/name=cassandra"
POD_NETWORK = ipaddress.ip_network("198.18.16.0/20")
# A Cassandra JVM in a container on a loaded 2-core machine: start-up, ring delay, bootstrap.
POD_TIMEOUT_S = 600.0
RING_TIMEOUT_S = 300.0


def wait(check: Callable[[], T | None], what: str, timeout: float = RING_TIMEOUT_S) -> T:
    return polling.poll(check, timeout=timeout, what=what, interval=2.0)


def _quietly(check: Callable[[], T | None]) -> Callable[[], T | None]:
    """A check that treats a failing kubectl exec (container restarting, JMX not up yet) as "not yet"."""

    def guarded() -> T | None:
        try:
            return check()
        except KubectlError:
            return None

    return guarded


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    before = {name: Path("/proc/sys", name).read_text() for name in KUBELET_SYSCTLS}
    local = LocalCluster(
        tmp_path_factory.mktemp("podlayer"),
        kubelet_options=None,
        pod_layer=PodLayerOptions(nodes=3),
        bin_dir=_binaries(),
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()
        after = {name: Path("/proc/sys", name).read_text() for name in KUBELET_SYSCTLS}
        assert after == before, "a kubelet changed a machine-wide kernel setting"
        assert not network.fabric_exists(), "the fabric bridge outlived the pod layer"


@pytest.fixture(scope="module")
def kubectl(cluster: LocalCluster) -> Kubectl:
    assert cluster.plane.bin_dir is not None
    return Kubectl(cluster.plane.bin_dir / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="module")
def image_overrides() -> dict[str, str]:
    built = ensure_images()
    return {"seedsvc/sidecar": built["sidecar"].reference, "seedsvc/cassandra": built["cassandra"].reference}


def apply_overlay(
    cluster: LocalCluster, kubectl: Kubectl, overlay: str, namespace: str, images: dict[str, str], workdir: Path
) -> None:
    cluster.create_namespace(namespace)
    assert kubectl.binary.is_file()
    manifest = d.in_namespace(kubectl.binary, overlay, namespace, workdir, images=images)
    kubectl("apply", "-f", "-", stdin=manifest)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _ready_since(pod: dict[str, Any]) -> datetime:
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return _time(ready["lastTransitionTime"])


def _ips(pods: list[dict[str, Any]]) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}


def wait_for_ring(kubectl: Kubectl, namespace: str, pod: str, addresses: set[str]) -> dict[str, str]:
    """Until ``pod``'s nodetool status shows exactly ``addresses``, all Up/Normal."""

    def formed() -> dict[str, str] | None:
        ring = kubectl.ring(namespace, pod)
        return ring if set(ring) == addresses and set(ring.values()) == {"UN"} else None

    return wait(_quietly(formed), f"{sorted(addresses)} all UN in {pod}'s nodetool status")


def test_nodes_are_real_kubelets_in_three_zones_that_leave_the_machine_alone(cluster: LocalCluster) -> None:
    nodes = cluster.plane.api("GET", "/api/v1/nodes")["items"]
    assert sorted(n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes) == [
        "zone-a",
        "zone-b",
        "zone-c",
    ]
    for node in nodes:
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        assert not node["spec"].get("taints"), "the not-ready taint is lifted once the kubelet is Ready"
    for real in cluster.layer.nodes:
        # The kubelet set kernel.panic to 10 as it always does, but in the node's mount namespace only:
        # the file it wrote is ours, and the machine's value is untouched (the fixture checks it again).
        assert real.paths.sysctl_masks.joinpath("kernel.panic").read_text().strip() == "10"
    assert Path("/proc/sys/kernel/panic").read_text().strip() != "10" or pytest.fail(
        "the machine's kernel.panic is 10: cannot tell the kubelet's write from the machine's value"
    )
    assert not Path("/var/lib/kubelet").exists(), "the kubelet wrote outside its namespace"


def test_statefulset_overlay_forms_a_ring_scales_and_replaces_pod_0(
    cluster: LocalCluster, kubectl: Kubectl, image_overrides: dict[str, str], tmp_path: Path
) -> None:
    apply_overlay(cluster, kubectl, "statefulset", NAMESPACE, image_overrides, tmp_path / "kustomize")
    pods = cluster.wait_for_ready_pods(NAMESPACE, SELECTOR, 3, timeout=3 * POD_TIMEOUT_S)
    ips = _ips(pods)

    # OrderedReady through the native sidecar's startupProbe: pod N is created only after N-1 is Ready,
    # and in each pod Cassandra starts only after the sidecar has started and its startupProbe passed.
    for earlier, later in itertools.pairwise(pods):
        assert _time(later["metadata"]["creationTimestamp"]) >= _ready_since(earlier)
    for pod in pods:
        sidecar = pod["status"]["initContainerStatuses"][0]
        cassandra = pod["status"]["containerStatuses"][0]
        assert sidecar["name"] == "seedsvc" and sidecar["started"] and sidecar["restartCount"] == 0
        assert _time(cassandra["state"]["running"]["startedAt"]) >= _time(sidecar["state"]["running"]["startedAt"])
        assert ipaddress.ip_address(pod["status"]["podIP"]) in POD_NETWORK
    assert len({p["spec"]["nodeName"] for p in pods}) == 3, "spread over the three zones"

    ring = wait_for_ring(kubectl, NAMESPACE, "cassandra-0", set(ips.values()))
    assert len(ring) == 3

    # Cassandra read its seeds from 127.0.0.1 in its own pod: the rendered configuration names that
    # URL, the shim logged its first answer, and the Gossiper holds the sidecar's list.
    rendered = kubectl.exec(NAMESPACE, "cassandra-1", "cassandra", "cat", "/run/cassandra/conf/cassandra.yaml")
    assert 'url: "http://127.0.0.1:8080/seeds"' in rendered
    status, body = sidecar_json(ips["cassandra-1"])
    assert status == 200 and body["source"] == "kubernetes" and not body["stale"]
    assert ips["cassandra-1"] not in body["seeds"] and set(body["seeds"]) <= set(ips.values())
    assert set(kubectl.seeds_in_gossiper(NAMESPACE, "cassandra-1")) == set(body["seeds"])

    # The pod as deployed: no token in Cassandra's container, a read-only root filesystem, non-root.
    with pytest.raises(KubectlError):
        kubectl.exec(NAMESPACE, "cassandra-1", "cassandra", "ls", "/var/run/secrets/kubernetes.io/serviceaccount")
    with pytest.raises(KubectlError, match="Read-only file system"):
        kubectl.exec(NAMESPACE, "cassandra-1", "cassandra", "touch", "/opt/x")
    assert kubectl.exec(NAMESPACE, "cassandra-1", "seedsvc", "id", "-u").strip() == "10001"
    assert kubectl.exec(NAMESPACE, "cassandra-1", "cassandra", "id", "-u").strip() == "999"

    # Scale to four: the new pod bootstraps from the sidecar's list.
    kubectl("scale", "-n", NAMESPACE, "statefulset/cassandra", "--replicas=4")
    pods = cluster.wait_for_ready_pods(NAMESPACE, SELECTOR, 4, timeout=POD_TIMEOUT_S)
    ips = _ips(pods)
    wait_for_ring(kubectl, NAMESPACE, "cassandra-0", set(ips.values()))

    # Pod 0 deleted: the StatefulSet brings it back; it is not served itself (peers are ready) and
    # rejoins the ring under its new address.
    old_uid = pods[0]["metadata"]["uid"]
    kubectl("delete", "pod", "-n", NAMESPACE, "cassandra-0", "--wait=false")

    def replaced() -> list[dict[str, Any]] | None:
        live = cluster.pods(NAMESPACE, SELECTOR)
        fresh = [p for p in live if p["metadata"]["name"] == "cassandra-0" and p["metadata"]["uid"] != old_uid]
        return live if len(live) == 4 and fresh and all(map(pod_is_ready, live)) else None

    pods = wait(replaced, "cassandra-0 replaced and Ready", timeout=POD_TIMEOUT_S)
    ips = _ips(pods)
    status, body = sidecar_json(ips["cassandra-0"])
    assert status == 200 and ips["cassandra-0"] not in body["seeds"] and body["mode"] == "discovered"
    wait_for_ring(kubectl, NAMESPACE, "cassandra-1", set(ips.values()))


def test_a_pod_cut_from_the_api_server_then_from_its_peers(cluster: LocalCluster, kubectl: Kubectl) -> None:
    pods = cluster.wait_for_ready_pods(NAMESPACE, SELECTOR, 4, timeout=POD_TIMEOUT_S)
    ips = _ips(pods)
    victim = pods[3]
    others = {name: ip for name, ip in ips.items() if name != "cassandra-3"}
    _, before = sidecar_json(ips["cassandra-3"])

    # 1. Cut from the API server (the kubernetes Service's ClusterIP, the only way the sidecar knows),
    # nothing else. A seed then goes unready (its CQL port closed): the other sidecars drop it, the
    # cut one cannot learn of it and keeps serving its last list, and Cassandra there is untouched.
    seed = before["seeds"][0]
    seed_pod = next(name for name, ip in ips.items() if ip == seed)
    watcher = next(name for name in others if name != seed_pod)
    cut_pod(cluster.layer, victim, [kubernetes_service_ip()])
    cut_at = time.monotonic()
    try:
        # The idle watch's TCP keepalive notices the silent path: the list is served on, marked stale.
        wait(lambda: sidecar_json(ips["cassandra-3"])[1].get("stale") or None, "cassandra-3's list marked stale")
        print(f"cassandra-3's sidecar marked its list stale {time.monotonic() - cut_at:.1f}s into the partition")
        kubectl.exec(NAMESPACE, seed_pod, "cassandra", "nodetool", "disablebinary")
        wait(lambda: seed not in sidecar_json(ips[watcher])[1].get("seeds", [seed]) or None, f"{watcher} drops {seed}")
        status, during = sidecar_json(ips["cassandra-3"])
        assert status == 200 and during["seeds"] == before["seeds"] and during["generation"] == before["generation"]
        assert during["stale"], "served on, and marked stale"
        assert set(kubectl.seeds_in_gossiper(NAMESPACE, "cassandra-3")) == set(before["seeds"])
    finally:
        heal_pod(cluster.layer, victim)
    # Healed (the seed still unready), its watch resumes and it drops the seed too: what watching the
    # API serves the others. Then the seed comes back.
    healed = time.monotonic()
    def caught_up() -> bool:
        body = sidecar_json(ips["cassandra-3"])[1]
        return seed not in body["seeds"] and not body["stale"]

    wait(caught_up, "the healed sidecar catching up")
    print(f"cassandra-3's sidecar caught up {time.monotonic() - healed:.1f}s after the partition healed")
    kubectl.exec(NAMESPACE, seed_pod, "cassandra", "nodetool", "enablebinary")
    cluster.wait_for_ready_pods(NAMESPACE, SELECTOR, 4, timeout=POD_TIMEOUT_S)

    # 2. Cut from its peers (every other pod's address): the ring marks it down; its sidecar, still
    # reaching the API server, keeps serving and its Gossiper keeps the seeds. Healed, it is back Up.
    cut_pod(cluster.layer, victim, list(others.values()))
    try:
        wait(
            _quietly(lambda: kubectl.ring(NAMESPACE, "cassandra-0").get(ips["cassandra-3"]) == "DN" or None),
            "cassandra-3 marked down by its peers",
        )
        status, cut_off = sidecar_json(ips["cassandra-3"])
        assert status == 200 and cut_off["seeds"] and not cut_off["stale"]
        assert set(kubectl.seeds_in_gossiper(NAMESPACE, "cassandra-3")) == set(cut_off["seeds"])
    finally:
        heal_pod(cluster.layer, victim)
    wait_for_ring(kubectl, NAMESPACE, "cassandra-0", set(ips.values()))


def test_dns_only_overlay_forms_a_ring_without_api_access(
    cluster: LocalCluster, kubectl: Kubectl, image_overrides: dict[str, str], tmp_path: Path
) -> None:
    # The StatefulSet's nodes give the machine back first (4 JVMs, then 3 more would not fit 2 cores).
    kubectl("delete", "statefulset", "-n", NAMESPACE, "cassandra", "--wait=false", "--ignore-not-found")
    kubectl("delete", "pod", "-n", NAMESPACE, "--all", "--grace-period=0", "--force", "--ignore-not-found")
    wait(lambda: not cluster.pods(NAMESPACE, SELECTOR) or None, "the StatefulSet's pods gone")

    apply_overlay(cluster, kubectl, "dns-only", DNS_NAMESPACE, image_overrides, tmp_path / "kustomize")
    pods = cluster.wait_for_ready_pods(DNS_NAMESPACE, SELECTOR, 3, timeout=3 * POD_TIMEOUT_S)
    ips = _ips(pods)
    wait_for_ring(kubectl, DNS_NAMESPACE, "cassandra-0", set(ips.values()))
    status, body = sidecar_json(ips["cassandra-2"])
    assert status == 200 and body["source"] == "dns" and not body["stale"]
    assert set(body["seeds"]) <= set(ips.values()) and ips["cassandra-2"] not in body["seeds"]
    with pytest.raises(KubectlError):  # no token anywhere in this overlay
        kubectl.exec(DNS_NAMESPACE, "cassandra-2", "seedsvc", "ls", "/var/run/secrets/kubernetes.io/serviceaccount")

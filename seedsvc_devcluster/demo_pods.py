"""`make demo` on the real pod layer: deploy/overlays/statefulset on real kubelets, containerd and runc.

Three nodes (zone-a/b/c) in network namespaces of their own, each pod in its own namespace with an
address from 198.18.0.0/15, the images built from deploy/images; the overlay applied unchanged but
for the image names. The tour: three pods come up in order through the sidecar's startupProbe, the
ring forms, the StatefulSet scales to four.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from seedsvc_devcluster import build
from seedsvc_devcluster import deploy_support as d
from seedsvc_devcluster.images import ensure_images
from seedsvc_devcluster.kubelet import pod_is_ready
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.node.observe import Kubectl, KubectlError, sidecar_json
from seedsvc_devcluster.node.pod_layer import PodLayerOptions

NAMESPACE: Final = "cassandra"
SELECTOR: Final = "app.kubernetes.io/name=cassandra"
STEP_TIMEOUT_S: Final = 900.0


def show_pods(cluster: LocalCluster) -> int:
    """One line per pod: node and zone, address, readiness, what its sidecar serves (asked from the host)."""
    zones = {
        n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/zone", "-")
        for n in cluster.plane.api("GET", "/api/v1/nodes")["items"]
    }
    print(f"\n-- {time.strftime('%H:%M:%S')}")
    ready = 0
    for pod in cluster.pods(NAMESPACE, SELECTOR):
        name, node = pod["metadata"]["name"], pod["spec"].get("nodeName", "-")
        ip = pod.get("status", {}).get("podIP", "")
        is_ready = pod_is_ready(pod)
        ready += is_ready
        answer = "-"
        if ip:
            try:
                status, body = sidecar_json(ip)
                answer = f"{status} {','.join(body.get('seeds', []))} ({body.get('mode', 'no list yet')})"
            except OSError as exc:
                answer = f"not answering ({exc.__class__.__name__})"
        where = f"{node} ({zones.get(node, '-')})"
        print(f"  {name:12} {where:25} {ip or '-':13} {'ready  ' if is_ready else 'unready'}  GET /seeds -> {answer}")
    return ready


def wait_for(cluster: LocalCluster, replicas: int) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while show_pods(cluster) < replicas and time.monotonic() < deadline:
        time.sleep(10)


def tour(workdir: Path, hold: Callable[[], None] | None) -> None:
    print("building or reusing the binaries and the images (cached under ~/.cache/seedsvc) ...", flush=True)
    bin_dir = build.ensure_built()
    built = ensure_images()
    images = {"seedsvc/sidecar": built["sidecar"].reference, "seedsvc/cassandra": built["cassandra"].reference}
    print("starting the control plane and three real nodes (kubelet + containerd + runc each) ...", flush=True)
    with LocalCluster(workdir, kubelet_options=None, pod_layer=PodLayerOptions(nodes=3), bin_dir=bin_dir) as cluster:
        kubectl = Kubectl(bin_dir / "kubectl", cluster.kubeconfig)
        print(f"control plane up: {cluster.plane.server}; nodes: {', '.join(n.name for n in cluster.layer.nodes)}")
        cluster.create_namespace(NAMESPACE)
        manifest = d.in_namespace(kubectl.binary, "statefulset", NAMESPACE, workdir / "kustomize", images=images)
        kubectl("apply", "-f", "-", stdin=manifest)
        print(
            "\napplied deploy/overlays/statefulset (image names pointed at the local builds):\n"
            "3 pods, OrderedReady; in each the seedsvc native sidecar starts first and Cassandra only\n"
            "once its startupProbe sees /readyz 200. Pod addresses are real, each pod its own namespace."
        )
        wait_for(cluster, 3)
        print_ring(kubectl)
        kubectl("scale", "-n", NAMESPACE, "statefulset/cassandra", "--replicas=4")
        print("\n== scaled to 4: cassandra-3 bootstraps from the seeds its sidecar serves")
        wait_for(cluster, 4)
        print_ring(kubectl)
        pods = cluster.pods(NAMESPACE, SELECTOR)
        print("\nTry it yourself:")
        for pod in pods[:2]:
            ip = pod["status"].get("podIP")
            print(f"  curl -s http://{ip}:8080/seeds; curl -s 'http://{ip}:8080/seeds?format=json'")
        print(f"  KUBECONFIG={cluster.kubeconfig} {kubectl.binary} -n {NAMESPACE} get pods -o wide")
        print(f"  ... exec cassandra-0 -c cassandra -- nodetool status      (logs: {workdir})")
        if hold is not None:
            hold()


def print_ring(kubectl: Kubectl) -> None:
    try:
        print(
            "\nnodetool status (cassandra-0):\n"
            + kubectl.exec(NAMESPACE, "cassandra-0", "cassandra", "nodetool", "status")
        )
    except KubectlError as exc:
        print(f"\nnodetool status failed: {exc}")

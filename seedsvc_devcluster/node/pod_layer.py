"""The real pod layer: the fabric, N real nodes (one per fake zone), their storage, and the janitor.

Two phases, because the control plane must listen on the fabric's address: :meth:`PodLayer.prepare`
makes the fabric and the node namespaces (before the control plane starts), :meth:`PodLayer.start`
starts the nodes against the running control plane. :meth:`PodLayer.stop` (or the death of this
process) hands everything to the janitor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from seedsvc_devcluster.controlplane import ControlPlane
from seedsvc_devcluster.node import cgroups, network
from seedsvc_devcluster.node.addressing import CLUSTER_DNS_IP, FABRIC_GATEWAY, NodeAddressing, nodes
from seedsvc_devcluster.node.configs import NodePaths
from seedsvc_devcluster.node.janitor import SOCKET_DIR, Janitor, Plan, take_lock
from seedsvc_devcluster.node.real_node import RealNode

STORAGE_CLASS: Final = "seedsvc-local"
# Local volumes per node: retained claims keep theirs, and the tests run two StatefulSets (4 + 3 pods).
VOLUMES_PER_NODE: Final = 4
# The size local volumes claim to have: capacity is not enforced for local volumes, and the manifests
# ask for 100Gi each.
VOLUME_CAPACITY: Final = "200Gi"


@dataclass(frozen=True)
class PodLayerOptions:
    """How many nodes (each its own fake zone: zone-a, zone-b, ...)."""

    nodes: int = 3


@dataclass(frozen=True)
class PodImages:
    """OCI archives to import into every node, and the pause image the sandboxes run."""

    archives: tuple[Path, ...]
    pause_image: str


@dataclass
class PodLayer:
    workdir: Path
    node_count: int = 3
    bin_dir: Path | None = None
    nodes: list[RealNode] = field(default_factory=list, init=False)
    _janitor: Janitor | None = field(default=None, init=False)
    _lock: IO[bytes] | None = field(default=None, init=False)
    _plan: Plan = field(default_factory=Plan, init=False)
    _addressing: tuple[NodeAddressing, ...] = field(default=(), init=False)

    @property
    def address(self) -> str:
        """Where the control plane must listen for the pods to reach it."""
        return FABRIC_GATEWAY

    @property
    def state_dir(self) -> Path:
        return self.workdir / "nodes"

    def prepare(self) -> PodLayer:
        """Take the machine's pod-layer lock, start the janitor, make the fabric and node namespaces."""
        self._addressing = nodes(self.node_count)
        self._lock = take_lock()
        try:
            self._janitor = Janitor.start(self._lock, self.workdir / "logs" / "janitor.log")
        finally:
            self._lock.close()  # the janitor holds its own copy of the lock now
        base = cgroups.own_memory_cgroup()
        self._plan.cgroup_roots = [cgroups.node_root(base, n.name) for n in self._addressing]
        self._plan.state_dirs = [str(self.state_dir)]
        self._plan.save()
        network.create_fabric()
        for node in self._addressing:
            network.create_node_network(node, self._addressing)
        return self

    def start(self, plane: ControlPlane, images: PodImages) -> PodLayer:
        """Start every node (containerd, images, kubelet) and give them storage and cluster DNS."""
        bin_dir = self.bin_dir or plane.bin_dir
        assert bin_dir is not None, "a started plane knows its binaries"
        routes = network.control_plane_routes(plane.ports["apiserver"], plane.ports["coredns"])
        self._create_dns_service(plane)
        for addressing, root in zip(self._addressing, self._plan.cgroup_roots, strict=True):
            network.route_services(addressing, routes)
            created = cgroups.make(f"{root}/system")
            self._plan.created_cgroup_dirs += [str(p) for p in created]
            self._plan.save()
            SOCKET_DIR.mkdir(mode=0o700, exist_ok=True)
            node = RealNode(addressing, NodePaths(self.state_dir / addressing.name, SOCKET_DIR), root, bin_dir)
            self.nodes.append(node)
            node.start(plane, pause_image=images.pause_image, archives=images.archives)
        self._create_storage(plane)
        return self

    def stop(self) -> None:
        """Kill the nodes, then let the janitor remove the rest. Safe to call more than once."""
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):  # the janitor removes whatever this leaves
                node.stop()
        self.nodes.clear()
        janitor, self._janitor = self._janitor, None
        if janitor is not None:
            janitor.finish()

    def node(self, name: str) -> RealNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # -- cluster objects the nodes need --

    def _create_dns_service(self, plane: ControlPlane) -> None:
        """kube-dns at the ClusterIP the kubelets give pods as their nameserver (no selector: the
        node namespaces translate it to CoreDNS, which runs outside the cluster)."""
        ports = [{"name": f"dns-{p.lower()}", "port": 53, "protocol": p} for p in ("UDP", "TCP")]
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": ports},
        }
        plane.api("POST", "/api/v1/namespaces/kube-system/services", service)

    def _create_storage(self, plane: ControlPlane) -> None:
        """A default StorageClass of local volumes bound when a pod is scheduled, and its volumes."""
        plane.api(
            "POST",
            "/apis/storage.k8s.io/v1/storageclasses",
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
        )
        for node in self.nodes:
            for index in range(VOLUMES_PER_NODE):
                path = node.paths.volumes / f"pv-{index}"
                path.mkdir(parents=True, exist_ok=True)
                plane.api("POST", "/api/v1/persistentvolumes", local_volume(node.name, index, path))


def local_volume(node: str, index: int, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{node}-pv-{index}"},
        "spec": {
            "capacity": {"storage": VOLUME_CAPACITY},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }


def pod_netns(layer: PodLayer, pod: dict[str, Any]) -> str:
    """``/proc/<pid>/ns/net`` of a running pod, found through its cgroup (any of its processes)."""
    uid = pod["metadata"]["uid"]
    node = layer.node(pod["spec"]["nodeName"])
    pods_root = cgroups.CGROUP_MOUNT / "pids" / node.cgroup_root.strip("/")
    for directory in pods_root.rglob(f"pod{uid}"):
        for pid in sorted(cgroups.pids_below(directory)):
            return f"/proc/{pid}/ns/net"
    raise LookupError(f"no process of pod {pod['metadata']['name']} ({uid}) on {node.name}")


def cut_pod(layer: PodLayer, pod: dict[str, Any], addresses: Sequence[str]) -> None:
    network.cut_pod(pod_netns(layer, pod), addresses)


def heal_pod(layer: PodLayer, pod: dict[str, Any]) -> None:
    network.heal_pod(pod_netns(layer, pod))

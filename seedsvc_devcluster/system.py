"""The whole system on one machine: deploy/'s StatefulSet overlay on a real control plane, with a real
sidecar and a real Cassandra 5.0 node for every pod the kubelet stand-in runs.

Shared by ``tests/test_whole_system.py`` and ``make demo``; the test module's docstring says how pods
map to processes and what differs from a real cluster.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from seedsvc_devcluster import build
from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import deploy_support as d
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.paths import SHIM_JAR
from seedsvc_devcluster.pods import PodReconciler
from seedsvc_devcluster.sidecar_process import SidecarProcess as Sidecar
from seedsvc_devcluster.sidecar_process import clean_env

SHIM_CLASS = "io.seedsvc.cassandra.SidecarSeedProvider"
OVERLAY = "statefulset"
SELECTOR = "app.kubernetes.io/name=cassandra"
FIRST_POD_IP = "127.0.30.1"
NODE_TIMEOUT_S = 420.0
DATA_MOUNT = "/var/lib/cassandra"


class SystemUnavailable(RuntimeError):
    """A prerequisite is missing or the manifests were not accepted."""


@dataclass
class System:
    plane: ControlPlane
    kubelet: Kubelet
    runner: PodReconciler
    namespace: str
    kubectl: Path
    objects: list[d.Obj]
    workdir: Path

    def pods(self) -> dict[str, d.Obj]:
        return {p["metadata"]["name"]: p for p in self.kubelet.list_pods(self.namespace, SELECTOR)}

    def node(self, pod: str) -> harness.CassandraNode:
        proc = self.runner.processes(pod)
        assert proc is not None and proc.node is not None, f"{pod} runs nothing; {self.runner.log()}"
        return proc.node

    def kubectl_run(self, *args: str) -> str:
        done = d.run_kubectl(self.kubectl, ["-n", self.namespace, *args], kubeconfig=self.plane.kubeconfig)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def wait_for_ring(self, count: int, timeout: float = NODE_TIMEOUT_S) -> dict[str, d.Obj]:
        """``count`` pods Ready (CQL open on their IPs), each with its own running Cassandra."""
        pods = self.kubelet.wait_for_pods(self.namespace, SELECTOR, count, ready=True, timeout=timeout)
        for pod in pods:
            proc = self.runner.wait_for_node(pod["metadata"]["name"], uid=pod["metadata"]["uid"], timeout=60)
            assert proc.ip == pod["status"]["podIP"]
        return {p["metadata"]["name"]: p for p in pods}


def _downward(pod: d.Obj) -> dict[str, str]:
    return {
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.name": pod["metadata"]["name"],
        "status.podIP": pod["status"]["podIP"],
    }


def _sidecar_factory(
    plane: ControlPlane, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> Callable[[d.Obj], Sidecar]:
    def make(pod: d.Obj) -> Sidecar:
        name, uid, ip = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
        spec = pod["spec"]
        env = d.resolve_env(d.container(spec, d.SIDECAR), _downward(pod))
        incarnation = workdir / "pods" / f"{name}-{uid[:8]}"
        # The projected token volume of the manifest: a fresh token of the pod's ServiceAccount.
        sa_dir = plane.write_incluster_files(
            pod["metadata"]["namespace"], spec["serviceAccountName"], incarnation / "serviceaccount"
        )
        env |= {
            **plane.incluster_env(),
            "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
            # The manifest's emptyDir for the state file: one per pod incarnation.
            "SEEDSVC_STATE_FILE": str(incarnation / "seedsvc-state" / "state.json"),
            "SEEDSVC_HOST": ip,
            "SEEDSVC_PORT": "0",
            **(extra_env or {}),
        }
        return Sidecar(name, clean_env(env), incarnation / "sidecar.log")

    return make


def _node_factory(workdir: Path) -> Callable[[d.Obj, Sidecar], harness.CassandraNode]:
    def make(pod: d.Obj, sidecar: Sidecar) -> harness.CassandraNode:
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        container = d.container(pod["spec"], d.CASSANDRA)
        env = d.resolve_env(container, _downward(pod))
        data_dir = workdir / "pvc" / f"data-{name}"  # the StatefulSet's volumeClaimTemplate "data"
        cache_file = env["SEEDSVC_SHIM_CACHE_FILE"]
        assert cache_file.startswith(DATA_MOUNT + "/"), cache_file
        assert env["SEEDSVC_SHIM_URL"] == "http://127.0.0.1:8080/seeds", "the shim talks to its own pod's sidecar"
        return harness.CassandraNode(
            ip,
            data_dir,
            cluster_name=env["CASSANDRA_CLUSTER_NAME"],
            num_tokens=int(env["CASSANDRA_NUM_TOKENS"]),
            snitch="GossipingPropertyFileSnitch",
            dc=env["CASSANDRA_DC"],
            rack=env["CASSANDRA_RACK"],
            seed_provider_class=SHIM_CLASS,
            seed_provider_params={
                "url": sidecar.seeds_url,
                "cache_file": str(data_dir / cache_file.removeprefix(DATA_MOUNT + "/")),
                "live_reload": "true",
            },
            extra_classpath=[SHIM_JAR],
        )

    return make


@contextlib.contextmanager
def running_system(
    plane_factory: Callable[[ControlPlaneOptions], ControlPlane], workdir: Path, *, first_pod_ip: str = FIRST_POD_IP
) -> Iterator[System]:
    """Apply the StatefulSet overlay to a control plane of its own and run every pod's processes."""
    require_cassandra_prerequisites()
    # Our own cluster (no CoreDNS: nothing here resolves names), so no other kubelet stand-in runs on it.
    cluster = LocalCluster(
        workdir,
        kubelet_options=KubeletOptions(probe=True, first_pod_ip=first_pod_ip, probe_timeout_s=1.0),
        adopt=plane_factory(ControlPlaneOptions(coredns=False)),
    ).start()
    try:
        namespace = cluster.create_namespace(f"whole-system-{uuid.uuid4().hex[:6]}")
        with statefulset_in(cluster.plane, cluster.kubelet, namespace, workdir) as system:
            yield system
    finally:
        cluster.stop()


def require_cassandra_prerequisites() -> None:
    """The shim jar and the Cassandra distribution; fetches the latter if needed."""
    if not SHIM_JAR.is_file():
        raise SystemUnavailable(f"{SHIM_JAR} is missing: `cd java-shim && mvn -B -q -ntp package -DskipTests`")
    harness.ensure_distribution()


@contextlib.contextmanager
def statefulset_in(
    plane: ControlPlane,
    kubelet: Kubelet,
    namespace: str,
    workdir: Path,
    *,
    cassandra: bool = True,
    overlay: str = OVERLAY,
    sidecar_env: Mapping[str, str] | None = None,
) -> Iterator[System]:
    """deploy/overlays/statefulset (or ``overlay``) applied to ``namespace`` (which must exist), its pods'
    processes running. ``sidecar_env`` overrides the manifest's sidecar variables (a peer URL that only
    resolves inside a real cluster).

    ``kubelet`` runs the pods (or, when another process runs the stand-in, only lists them).
    Without ``cassandra`` each pod runs its sidecar only. Leaves the namespace and its objects.
    """
    kubectl = build.ensure_built(log=False) / "kubectl"
    manifest = d.in_namespace(kubectl, overlay, namespace, workdir / "kustomize")
    objects = d.parse(manifest)
    runner = PodReconciler(
        plane,
        namespace,
        SELECTOR,
        sidecar_factory=_sidecar_factory(plane, workdir, sidecar_env),
        node_factory=_node_factory(workdir) if cassandra else None,
    )
    system = System(plane, kubelet, runner, namespace, kubectl, objects, workdir)
    runner.start()
    try:
        done = d.run_kubectl(
            kubectl, ["apply", "-n", namespace, "-f", "-"], stdin=manifest, kubeconfig=plane.kubeconfig
        )
        if done.returncode != 0:
            raise SystemUnavailable(f"kubectl apply failed: {done.stderr}")
        yield system
    finally:
        runner.stop()

"""deploy/'s StatefulSet on the cluster ``up`` started, with a real sidecar (and Cassandra node) per pod.

The commands ``statefulset`` and ``ring`` run this in the foreground: this process plays the
container runtime (:class:`~seedsvc_devcluster.pods.PodReconciler`), so its pods' processes stop when
it does, and it deletes its namespace on the way out.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from seedsvc_devcluster import polling
from seedsvc_devcluster.controlplane import ControlPlane
from seedsvc_devcluster.kubelet import READY_ANNOTATION, Kubelet, pod_is_ready
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.system import NODE_TIMEOUT_S, System, require_cassandra_prerequisites, statefulset_in
from seedsvc_devcluster.up import UpError, running_state

SIDECARS_TIMEOUT_S: Final = 180.0


@contextlib.contextmanager
def attached(directory: Path) -> Iterator[LocalCluster]:
    """The cluster ``up`` runs in ``directory``, as a :class:`LocalCluster` owning none of its processes."""
    if running_state(directory) is None:
        raise UpError(f"no local cluster is up in {directory}: run `python -m seedsvc_devcluster up` first")
    cluster = LocalCluster(directory, kubelet_options=None, adopt=ControlPlane.attach(directory / "controlplane"))
    yield cluster.start()


def _sidecars_ready(system: System, replicas: int) -> bool:
    """Sidecars only: no Cassandra opens the readiness port, so a pod is marked Ready once its sidecar is."""
    running = dict(system.runner.running)
    for name, proc in running.items():
        if proc.sidecar.is_ready():
            system.kubelet.set_ready(system.namespace, name, True)
    pods = system.pods()
    return len(pods) == replicas and all(pod_is_ready(p) for p in pods.values()) and len(running) == replicas


def describe(system: System) -> list[str]:
    """One line per pod: IP, readiness, what its sidecar serves, whether its Cassandra runs."""
    lines = []
    for name, pod in sorted(system.pods().items()):
        proc = system.runner.processes(name)
        answer = proc.sidecar.seeds() if proc is not None else None
        served = f"{answer.status} {answer.body}" if answer is not None else "-"
        node = "cassandra running" if proc is not None and proc.node is not None else "no cassandra"
        ready = "ready  " if pod_is_ready(pod) else "unready"
        lines.append(f"  {name:12} {pod.get('status', {}).get('podIP', '-'):12} {ready} {node:17} /seeds -> {served}")
    return lines


def hints(system: System, state_kubectl: str) -> list[str]:
    kubectl = f"KUBECONFIG={system.plane.kubeconfig} {state_kubectl} -n {system.namespace}"
    lines = ["Try it yourself:"]
    for name in sorted(system.runner.running):
        proc = system.runner.processes(name)
        if proc is not None:
            lines.append(f"  curl -s {proc.sidecar.seeds_url}; curl -s '{proc.sidecar.seeds_url}?format=json'")
    lines += [
        f"  {kubectl} get pods,endpointslices -o wide",
        f"  {kubectl} annotate --overwrite pod cassandra-0 {READY_ANNOTATION}=false   # flip readiness by hand",
        f"  logs: {system.workdir}",
    ]
    return lines


def run(directory: Path, *, namespace: str, replicas: int, cassandra: bool, hold_s: float | None) -> list[str]:
    """Apply, wait until every pod serves (sidecars ready, or the ring formed), print, hold, clean up.

    ``hold_s=None`` holds until SIGINT/SIGTERM. Returns the pod lines printed last.
    """
    state = running_state(directory)
    if cassandra:
        require_cassandra_prerequisites()
    with attached(directory) as cluster:
        kubelet = Kubelet.from_kubeconfig(cluster.plane.kubeconfig)  # lists and annotates; `up` runs the stand-in
        cluster.create_namespace(namespace)
        try:
            with statefulset_in(
                cluster.plane, kubelet, namespace, directory / "runs" / namespace, cassandra=cassandra
            ) as system:
                if replicas != 3:
                    system.kubectl_run("scale", "statefulset/cassandra", f"--replicas={replicas}")
                if cassandra:
                    system.wait_for_ring(replicas, timeout=NODE_TIMEOUT_S * replicas)
                else:
                    polling.poll(
                        lambda: _sidecars_ready(system, replicas),
                        timeout=SIDECARS_TIMEOUT_S,
                        what=f"{replicas} pods with ready sidecars",
                        interval=0.5,
                    )
                lines = describe(system)
                print("\n".join(lines), flush=True)
                print("\n".join(hints(system, state.kubectl if state else "kubectl")), flush=True)
                _hold(hold_s)
                return describe(system)
        finally:
            cluster.delete_namespace(namespace)
            kubelet.api_client.close()  # type: ignore[no-untyped-call]  # untyped upstream


def _hold(seconds: float | None) -> None:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if seconds is None:
            print("Running until Ctrl-C ...", flush=True)
        stop.wait(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""`make demo`: the whole system on one machine, /seeds changing live.

    python -m seedsvc_devcluster.demo            # deploy/'s StatefulSet on real kubelets (demo_pods.py): images
                                            # from deploy/images, a pod network namespace each; the ring
                                            # forms, then scales to 4. Without root (or the Debian
                                            # packages) it says why and runs on the kubelet stand-in.
    python -m seedsvc_devcluster.demo --stand-in # the same on the kubelet stand-in: pods are processes on
                                            # 127.0.x.y (a real sidecar and Cassandra 5.0 node per pod)
    python -m seedsvc_devcluster.demo --light    # stand-in, no Cassandra: sidecars only, readiness toured
    ... --no-hold                           # tear everything down after the tour instead of waiting
    ... --multi-dc [--light]                # stand-in, two DCs: deploy/overlays/multi-dc (demo_multidc.py)

The control plane (etcd, kube-apiserver, kube-controller-manager, CoreDNS; kube-scheduler with real
kubelets) comes from seedsvc_devcluster/go. On the stand-in `seedsvc serve` runs exactly as in a pod
(in-cluster token files, POD_NAME/POD_IP from the pod, the RBAC from deploy/).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seedsvc_devcluster import build, demo_multidc, demo_pods
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.kubelet import pod_is_ready
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.node.host_requirements import unavailable
from seedsvc_devcluster.sidecar_process import SidecarProcess, clean_env
from seedsvc_devcluster.system import System, running_system

NAMESPACE = "demo"
READY_ANNOTATION = "kubelet.seedsvc.test/ready"


def start_sidecar(plane: ControlPlane, pod: dict[str, Any], sa_dir: Path, log_dir: Path) -> SidecarProcess:
    """The pod's sidecar as a pod would run it: in-cluster token files, POD_NAME/POD_IP, any free port."""
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    env = {
        **plane.incluster_env(),
        "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
        "POD_NAME": name,
        "POD_IP": ip,
        "POD_NAMESPACE": NAMESPACE,
        "CASSANDRA_SERVICE": "cassandra",
        "SEEDSVC_HOST": "127.0.0.1",
        "SEEDSVC_PORT": "0",
        "SEEDSVC_FLAP_GRACE": "5",
    }
    return SidecarProcess(name, clean_env(env), log_dir / f"sidecar-{name}.log").start()


def show(step: str, plane: ControlPlane, sidecars: list[SidecarProcess]) -> None:
    time.sleep(1.5)  # a demo pause so the watch has delivered the change; tests wait on conditions
    pods = plane.api("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dcassandra")["items"]
    ready = {
        p["metadata"]["name"]: any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])
        )
        for p in pods
    }
    print(f"\n== {step}")
    for sidecar in sidecars:
        status, _, body = sidecar.seeds()
        state = "ready  " if ready.get(sidecar.name) else "unready"
        print(f"  {sidecar.name:12} {sidecar.env['POD_IP']:12} {state}  GET /seeds -> {status} {body}")


def tour(cluster: LocalCluster, workdir: Path) -> list[SidecarProcess]:
    cluster.create_namespace(NAMESPACE)
    sa_dir = cluster.grant_seedsvc(NAMESPACE)
    cluster.apply(NAMESPACE, k8s.headless_service())
    statefulset = k8s.statefulset(replicas=3)
    # Pods start unready, as Cassandra does until it has joined; the tour readies them one by one.
    statefulset["spec"]["template"]["metadata"]["annotations"] = {READY_ANNOTATION: "false"}
    cluster.apply(NAMESPACE, statefulset)
    kubelet, plane = cluster.kubelet, cluster.plane
    pods = kubelet.wait_for_pods(NAMESPACE, "app=cassandra", 3, ready=False)
    sidecars = [start_sidecar(plane, pod, sa_dir, workdir) for pod in pods]

    show("3 pods, none ready: only cassandra-0 may seed itself; the others wait (503), no islands", plane, sidecars)
    for ordinal in range(3):
        kubelet.set_ready(NAMESPACE, f"cassandra-{ordinal}", True)
        show(f"cassandra-{ordinal} ready: each pod is served the ready seeds except itself", plane, sidecars)
    kubelet.set_ready(NAMESPACE, "cassandra-1", False)
    show("cassandra-1 unready: it keeps its seat for the flap grace (5s here, 30s by default)", plane, sidecars)
    time.sleep(5)
    show("grace over: cassandra-1 left the seed list", plane, sidecars)
    kubelet.set_ready(NAMESPACE, "cassandra-1", True)
    show("cassandra-1 ready again", plane, sidecars)
    return sidecars


def full_tour(workdir: Path, hold: bool) -> None:
    """deploy/overlays/statefulset with real Cassandra nodes: watch the ring form, then scale it."""

    def plane_factory(options: ControlPlaneOptions) -> ControlPlane:
        print("building or reusing the control plane binaries (cached under ~/.cache/seedsvc) ...", flush=True)
        plane = ControlPlane(workdir / "controlplane", options, bin_dir=build.ensure_built())
        plane.start()
        print(f"control plane up in {plane.startup_seconds:.1f}s: {plane.server}", flush=True)
        return plane

    print("fetching Cassandra 5.0 from Maven Central if needed (cached) ...", flush=True)
    # Pod IPs from 127.0.50.1: clear of the ranges the tests use, so a demo and a test run can coexist.
    with running_system(plane_factory, workdir, first_pod_ip="127.0.50.1") as system:
        print(
            f"applied deploy/overlays/statefulset to namespace {system.namespace}: 3 pods, OrderedReady;\n"
            "each pod: its seedsvc sidecar first (startupProbe on /readyz), then Cassandra with the shim."
        )
        for replicas in (3, 4):
            if replicas == 4:
                system.kubectl_run("scale", "statefulset/cassandra", "--replicas=4")
                print("\n== scaled to 4: cassandra-3 bootstraps from the seeds its sidecar serves")
            deadline = time.monotonic() + 900
            while True:
                ready = show_pods(system)
                if ready >= replicas or time.monotonic() > deadline:
                    break
                time.sleep(10)
        first = system.runner.processes("cassandra-0")
        if first is not None and first.node is not None:
            print("\nnodetool status (cassandra-0):\n" + first.node.nodetool("status"))
        print("\nTry it yourself:")
        for name in sorted(system.runner.running):
            proc = system.runner.processes(name)
            if proc is not None:
                print(f"  curl -s {proc.sidecar.seeds_url}; curl -s '{proc.sidecar.seeds_url}?format=json'")
        kubectl = f"KUBECONFIG={system.plane.kubeconfig} {system.kubectl} -n {system.namespace}"
        print(f"  {kubectl} get pods,endpointslices -o wide")
        print(f"  logs: {workdir}")
        if hold:
            wait_for_ctrl_c()


def show_pods(system: System) -> int:
    """One table line per pod: readiness, what its sidecar serves, whether its Cassandra runs."""
    pods = system.pods()
    print(f"\n-- {time.strftime('%H:%M:%S')}")
    ready = 0
    for name in sorted(pods):
        pod = pods[name]
        is_ready = pod_is_ready(pod)
        ready += is_ready
        proc = system.runner.processes(name)
        served = proc.sidecar.seeds() if proc is not None else None
        answer = f"{served.status} {served.body}" if served is not None else "-"
        node = "cassandra running" if proc is not None and proc.node is not None else "waiting for seeds"
        ip = pod.get("status", {}).get("podIP", "-")
        print(f"  {name:12} {ip:12} {'ready  ' if is_ready else 'unready'}  {node:18} GET /seeds -> {answer}")
    return ready


def wait_for_ctrl_c() -> None:
    print("\nRunning until Ctrl-C ...")
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    signal.sigwait(signals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--no-hold", action="store_true", help="tear down after the tour instead of waiting")
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="pods as processes on the kubelet stand-in instead of real kubelets (also the fallback without root)",
    )
    parser.add_argument(
        "--light", action="store_true", help="sidecars only, no Cassandra, on the stand-in (about a minute)"
    )
    parser.add_argument(
        "--multi-dc",
        action="store_true",
        help="two datacenters (deploy/overlays/multi-dc), a peer DC going unreachable and back",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seedsvc-demo-") as tmp:
        workdir = Path(tmp)
        if args.multi_dc:
            demo_multidc.main(workdir, cassandra=not args.light, hold=None if args.no_hold else wait_for_ctrl_c)
            return 0
        if not args.light:
            why_not = None if args.stand_in else unavailable()
            if args.stand_in or why_not is not None:
                if why_not is not None:
                    print(
                        f"the real pod layer cannot run here: {why_not};\nfalling back to the kubelet stand-in "
                        "(pods are processes on 127.0.x.y, no containers; see --stand-in)",
                        flush=True,
                    )
                full_tour(workdir, hold=not args.no_hold)
            else:
                demo_pods.tour(workdir, hold=None if args.no_hold else wait_for_ctrl_c)
            return 0
        sidecars: list[SidecarProcess] = []
        print("building or reusing the control plane binaries (cached under ~/.cache/seedsvc) ...", flush=True)
        with LocalCluster(workdir, bin_dir=build.ensure_built()) as cluster:
            plane = cluster.plane
            print(f"control plane up in {plane.startup_seconds:.1f}s: {plane.server} (kubeconfig {plane.kubeconfig})")
            try:
                sidecars = tour(cluster, workdir)
                print("\nTry it yourself:")
                for sidecar in sidecars:
                    print(f"  curl -s {sidecar.url}/seeds; curl -s '{sidecar.url}/seeds?format=json'")
                print(f"  curl -s {sidecars[0].url}/metrics | grep ^seedsvc_")
                print(
                    f"  KUBECONFIG={plane.kubeconfig} kubectl -n {NAMESPACE} get pods,endpointslices -o wide"
                    f"   (kubectl: {build.ensure_built(log=False) / 'kubectl'})"
                )
                print(f"  sidecar logs: {workdir}/sidecar-*.log")
                if not args.no_hold:
                    wait_for_ctrl_c()
            finally:
                for sidecar in sidecars:
                    sidecar.terminate()
                for sidecar in sidecars:
                    sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: a real control plane, a 3-pod StatefulSet, one real sidecar per pod, /seeds changing live.

    python -m tests.harness.demo            # scripted tour, then keeps running until Ctrl-C
    python -m tests.harness.demo --no-hold  # scripted tour, then tear everything down

Everything runs on loopback: etcd, kube-apiserver, kube-controller-manager and CoreDNS from
tests/controlplane, the kubelet stand-in giving pods 127.0.10.x addresses, and `seedsvc serve` run
exactly as in a pod (in-cluster token files, POD_NAME/POD_IP from the pod, the Role from deploy/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import k8s_objects as k8s
from tests.harness import build
from tests.harness.controlplane import ControlPlane, ControlPlaneOptions
from tests.harness.kubelet import Kubelet, KubeletOptions

NAMESPACE = "demo"
READY_ANNOTATION = "kubelet.seedsvc.test/ready"
LISTENING = re.compile(r"listening on http://(?P<host>[^:/\s]+):(?P<port>\d+)")


@dataclass
class Sidecar:
    pod: str
    ip: str
    process: subprocess.Popen[str]
    url: str

    def seeds(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + "/seeds", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode().strip()
        except OSError as error:
            return 0, str(error)


def start_sidecar(plane: ControlPlane, pod: dict[str, Any], sa_dir: Path, log_dir: Path) -> Sidecar:
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    env = {
        **os.environ,
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
    env.pop("KUBECONFIG", None)
    log = (log_dir / f"sidecar-{name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "seedsvc", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    log_path = log_dir / f"sidecar-{name}.log"
    while time.monotonic() < deadline:
        match = LISTENING.search(log_path.read_text())
        if match:
            return Sidecar(name, ip, process, f"http://{match['host']}:{match['port']}")
        if process.poll() is not None:
            raise RuntimeError(f"sidecar for {name} exited: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"sidecar for {name} did not report its port; see {log_path}")


def show(step: str, plane: ControlPlane, sidecars: list[Sidecar]) -> None:
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
        status, body = sidecar.seeds()
        state = "ready  " if ready.get(sidecar.pod) else "unready"
        print(f"  {sidecar.pod:12} {sidecar.ip:12} {state}  GET /seeds -> {status} {body}")


@contextlib.contextmanager
def running_cluster(workdir: Path) -> Iterator[tuple[ControlPlane, Kubelet]]:
    print("building or reusing the control plane binaries (cached under ~/.cache/seedsvc) ...", flush=True)
    plane = ControlPlane(workdir / "controlplane", ControlPlaneOptions(), bin_dir=build.ensure_built())
    plane.start()
    print(f"control plane up in {plane.startup_seconds:.1f}s: {plane.server} (kubeconfig {plane.kubeconfig})")
    kubelet = Kubelet.from_kubeconfig(plane.kubeconfig, KubeletOptions()).start()
    try:
        yield plane, kubelet
    finally:
        kubelet.stop()
        plane.stop()


def apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    version = obj["apiVersion"]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    plural = {"StatefulSet": "statefulsets", "RoleBinding": "rolebindings"}.get(obj["kind"], obj["kind"].lower() + "s")
    plane.api("POST", f"{prefix}/namespaces/{NAMESPACE}/{plural}", obj)


def tour(plane: ControlPlane, kubelet: Kubelet, workdir: Path) -> list[Sidecar]:
    plane.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    kubelet_wait = time.monotonic() + 30
    while not plane.exists(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"):
        if time.monotonic() > kubelet_wait:
            raise RuntimeError("namespace never got its default ServiceAccount")
        time.sleep(0.2)
    for obj in (
        k8s.service_account("seedsvc"),
        k8s.role_for_endpointslices(),
        k8s.role_binding("seedsvc", "seedsvc", "seedsvc", NAMESPACE),
        k8s.headless_service(),
    ):
        apply(plane, obj)
    statefulset = k8s.statefulset(replicas=3)
    # Pods start unready, as Cassandra does until it has joined; the tour readies them one by one.
    statefulset["spec"]["template"]["metadata"]["annotations"] = {READY_ANNOTATION: "false"}
    apply(plane, statefulset)
    pods = kubelet.wait_for_pods(NAMESPACE, "app=cassandra", 3, ready=False)
    sa_dir = plane.write_incluster_files(NAMESPACE, "seedsvc", workdir / "serviceaccount")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--no-hold", action="store_true", help="tear down after the tour instead of waiting")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seedsvc-demo-") as tmp:
        workdir = Path(tmp)
        sidecars: list[Sidecar] = []
        with running_cluster(workdir) as (plane, kubelet):
            try:
                sidecars = tour(plane, kubelet, workdir)
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
                    print("\nRunning until Ctrl-C ...")
                    signals = {signal.SIGINT, signal.SIGTERM}
                    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
                    signal.sigwait(signals)
            finally:
                for sidecar in sidecars:
                    sidecar.process.terminate()
                for sidecar in sidecars:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        sidecar.process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pod runner: a small reconciler that plays the container runtime for pods the kubelet stand-in runs.

The kubelet stand-in (``seedsvc_devcluster/kubelet.py``) only writes pod status; it starts no process. For
the whole-system test something must do what a kubelet's container runtime does:

- a pod appears with an IP: start its seedsvc sidecar (in-cluster token files of the pod's
  ServiceAccount, ``POD_NAME``/``POD_IP`` from the pod), wait for its ``/readyz`` (the sidecar's
  startupProbe in ``deploy/components/cassandra-pod``), then start its Cassandra process;
- a pod is being deleted, or is gone, or came back as a new incarnation (another uid): stop its
  Cassandra process (SIGTERM: Cassandra drains), then its sidecar; only then may the new incarnation
  start, on the same data directory (the pod's PersistentVolumeClaim).

:class:`PodReconciler` does exactly that from a background thread that lists the pods every
``interval_s`` seconds. What the Cassandra process looks like is the caller's business (a factory),
so this module does not depend on any particular manifest.

Nothing is left behind: every sidecar runs in its own process group, is killed by a finalizer and an
atexit hook, and (when started from the main thread) dies with the test process (PR_SET_PDEATHSIG).
Cassandra nodes have the same guarantees from ``seedsvc_devcluster/cassandra/node.py``.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedsvc_devcluster import polling, ports
from seedsvc_devcluster.cassandra import NATIVE_PORT, STARTUP_COMPLETE_MARKER, CassandraNode
from seedsvc_devcluster.controlplane import ControlPlane
from seedsvc_devcluster.sidecar_process import SidecarError, clean_env
from seedsvc_devcluster.sidecar_process import SidecarProcess as Sidecar


class PodHarnessError(RuntimeError):
    """A wait on the pod runner ran out, or it saw errors; the message says which."""


def incluster_sidecar_env(
    plane: ControlPlane,
    *,
    namespace: str,
    service_account: str,
    pod_name: str,
    pod_ip: str,
    sa_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a sidecar running "in" a pod: a fresh token of the pod's ServiceAccount
    (TokenRequest, as the kubelet's projected volume), the cluster CA and namespace files,
    KUBERNETES_SERVICE_HOST/PORT, POD_NAME/POD_IP/POD_NAMESPACE; listening on the pod IP, any port."""
    plane.write_incluster_files(namespace, service_account, sa_dir)
    return {
        **clean_env(),
        **plane.incluster_env(),
        "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
        "POD_NAMESPACE": namespace,
        "POD_NAME": pod_name,
        "POD_IP": pod_ip,
        "SEEDSVC_HOST": pod_ip,
        "SEEDSVC_PORT": "0",
        **(extra or {}),
    }


# --------------------------------------------------------------------------------------------------
# The reconciler: pods in, processes out
# --------------------------------------------------------------------------------------------------

Pod = dict[str, Any]
SidecarFactory = Callable[[Pod], Sidecar]
"""Builds (does not start) the sidecar for a pod."""
NodeFactory = Callable[[Pod, Sidecar], CassandraNode]
"""Builds (does not start) the Cassandra node for a pod, given its running sidecar."""


@dataclass
class PodProcesses:
    """What runs for one incarnation (uid) of a pod."""

    name: str
    uid: str
    ip: str
    sidecar: Sidecar
    node: CassandraNode | None = None
    created: float = field(default_factory=time.monotonic)
    node_started: float | None = None


@dataclass
class Event:
    at: float
    pod: str
    what: str


class PodReconciler:
    """Runs a sidecar and a Cassandra node for every live pod matching ``label_selector``.

    With ``node_factory=None`` it runs sidecars only (``python -m seedsvc_devcluster statefulset``).

    A pod is live when it has an IP, phase Running and no deletionTimestamp. Per pod name at most one
    incarnation runs at a time: when the uid changes or the pod stops being live, the old node is
    stopped (SIGTERM, drain) and its sidecar after it, before anything new starts. Start-up order
    within a pod follows the manifests: the sidecar first, Cassandra once the sidecar's ``/readyz``
    answers 200 (the native sidecar's startupProbe gate).

    ``events`` records what was done (and when); ``errors`` anything unexpected, e.g. a Cassandra
    process that exited by itself. Tests assert ``errors == []``.
    """

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        label_selector: str,
        *,
        sidecar_factory: SidecarFactory,
        node_factory: NodeFactory | None,
        interval_s: float = 0.5,
        sidecar_gate_timeout_s: float = 600.0,
    ) -> None:
        self.plane = plane
        self.namespace = namespace
        self.label_selector = label_selector
        self.sidecar_factory = sidecar_factory
        self.node_factory = node_factory
        self.interval_s = interval_s
        self.sidecar_gate_timeout_s = sidecar_gate_timeout_s
        self.running: dict[str, PodProcesses] = {}
        self.history: list[PodProcesses] = []
        self.events: list[Event] = []
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    # -- lifecycle --

    def start(self) -> PodReconciler:
        self._thread = threading.Thread(target=self._loop, name=f"pod-reconciler-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the loop, then every node (in parallel: each drains) and every sidecar."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            processes = list(self.running.values())
            self.running.clear()
        for proc in processes:
            if proc.node is not None:
                proc.node.terminate()
        deadline = time.monotonic() + timeout
        for proc in processes:
            if proc.node is not None:
                proc.node.stop(max(1.0, deadline - time.monotonic()))
            proc.sidecar.stop()

    def __enter__(self) -> PodReconciler:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- queries for tests --

    def processes(self, name: str) -> PodProcesses | None:
        with self._lock:
            return self.running.get(name)

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        """Poll ``check`` until it returns a truthy value; fail early if the reconciler saw errors."""

        def no_errors() -> None:
            if self.errors:
                raise PodHarnessError(f"pod reconciler errors while waiting for {what}: {self.errors}")

        try:
            return polling.poll(lambda: check() or None, timeout=timeout, what=what, interval=interval, alive=no_errors)
        except polling.PollTimeout as exc:
            raise PodHarnessError(f"{exc}; events: {self.log()}") from None

    def wait_for_node(self, name: str, *, uid: str | None = None, timeout: float = 300.0) -> PodProcesses:
        """Wait until the pod's Cassandra (of incarnation ``uid``, if given) serves CQL."""

        def node_up() -> PodProcesses | None:
            proc = self.processes(name)
            if proc is None or proc.node is None or (uid is not None and proc.uid != uid):
                return None
            return proc if proc.node.startup_seconds is not None else None

        return self.wait_for(node_up, timeout, f"Cassandra of pod {name} serving CQL")  # type: ignore[no-any-return]

    def log(self) -> str:
        with self._lock:
            return "; ".join(f"{e.at:.1f}s {e.pod}: {e.what}" for e in self.events)

    def _event(self, pod: str, what: str) -> None:
        with self._lock:
            self.events.append(Event(time.monotonic() - self._t0, pod, what))

    # -- the loop --

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception as exc:  # keep going: a transient API error must not stop the runtime
                self._event("-", f"reconcile error {exc!r}")
            self._stop.wait(self.interval_s)

    def _live_pods(self) -> dict[str, Pod]:
        selector = urllib.parse.quote(self.label_selector)
        pods = self.plane.api("GET", f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}")["items"]
        return {
            p["metadata"]["name"]: p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") == "Running"
            and p.get("status", {}).get("podIP")
        }

    def reconcile_once(self) -> None:
        live = self._live_pods()
        with self._lock:
            current = dict(self.running)
        # 1. Stop what no longer has a live pod of the same uid (deleted, terminating, replaced).
        for name, proc in current.items():
            pod = live.get(name)
            if pod is None or pod["metadata"]["uid"] != proc.uid:
                self._stop_pod(proc, "pod deleted" if pod is None else "pod replaced by a new incarnation")
        # 2. Start sidecars for new pods; start Cassandra once the sidecar is ready; watch for crashes.
        for name, pod in sorted(live.items()):
            with self._lock:
                found = self.running.get(name)
            if found is None:
                self._start_sidecar(pod)
                continue
            proc = found
            if proc.node is None and self.node_factory is None:
                continue  # sidecars only
            if proc.node is None:
                if proc.sidecar.is_ready():
                    self._start_node(proc, pod)
                elif time.monotonic() - proc.created > self.sidecar_gate_timeout_s:
                    self._error(name, "sidecar never became ready (startupProbe would restart it)")
            elif not proc.node.is_running():
                self._error(name, f"Cassandra exited by itself with {proc.node.returncode}")
                proc.node = None  # reported once; the test fails on errors
            elif proc.node.startup_seconds is None and self._serves_cql(proc.node):
                proc.node.startup_seconds = time.monotonic() - proc.node_started if proc.node_started else None
                self._event(name, f"Cassandra serving CQL after {proc.node.startup_seconds:.1f}s")

    @staticmethod
    def _serves_cql(node: CassandraNode) -> bool:
        return bool(node.grep_log(STARTUP_COMPLETE_MARKER, since_start=True)) and ports.tcp_connects(
            node.address, NATIVE_PORT
        )

    def _error(self, name: str, message: str) -> None:
        self._event(name, "ERROR " + message)
        self.errors.append(f"{name}: {message}")

    def _start_sidecar(self, pod: Pod) -> None:
        name, uid, ip = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
        sidecar = self.sidecar_factory(pod)
        try:
            sidecar.start()
        except SidecarError as exc:
            self._error(name, str(exc))
            return
        proc = PodProcesses(name=name, uid=uid, ip=ip, sidecar=sidecar)
        with self._lock:
            self.running[name] = proc
            self.history.append(proc)
        self._event(name, f"sidecar started on {sidecar.base_url} (uid {uid[:8]}, IP {ip})")

    def _start_node(self, proc: PodProcesses, pod: Pod) -> None:
        assert self.node_factory is not None
        node = self.node_factory(pod, proc.sidecar)
        node.start()
        proc.node, proc.node_started = node, time.monotonic()
        self._event(proc.name, f"sidecar ready; Cassandra started on {node.address} (pid {node.pid})")

    def _stop_pod(self, proc: PodProcesses, why: str) -> None:
        self._event(proc.name, f"{why}: stopping Cassandra (pid {proc.node.pid if proc.node else '-'}), then sidecar")
        if proc.node is not None:
            code = proc.node.stop()
            self._event(proc.name, f"Cassandra exited with {code}")
        proc.sidecar.stop()
        with self._lock:
            if self.running.get(proc.name) is proc:
                del self.running[proc.name]

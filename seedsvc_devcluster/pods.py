"""Per-pod processes for the end-to-end tests: a real ``seedsvc serve`` per pod, and a small reconciler
that plays the container runtime for pods the kubelet stand-in runs.

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
Cassandra nodes have the same guarantees from ``seedsvc_devcluster/cassandra.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from seedsvc_devcluster import processes
from seedsvc_devcluster.cassandra import NATIVE_PORT, STARTUP_COMPLETE_MARKER, CassandraNode
from seedsvc_devcluster.controlplane import ControlPlane

LISTENING = re.compile(r"listening on http://(?P<host>[^:/\s\"]+):(?P<port>\d+)")
SIDECAR_START_TIMEOUT_S = 30.0
"""Bound for ``seedsvc serve`` to import, bind and log its address (about a second when idle)."""
SIDECAR_STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 2.0

# Variables of the test process that must not leak into a sidecar: each sidecar gets exactly the
# configuration its pod would have.
_SCRUBBED_PREFIXES = ("SEEDSVC_", "CASSANDRA_", "POD_", "KUBERNETES_")
_SCRUBBED = ("KUBECONFIG",)

class PodHarnessError(RuntimeError):
    """A sidecar did not start, or a wait ran out; the message carries the log tail."""


def base_environment() -> dict[str, str]:
    """The test process's environment without any seedsvc, Cassandra, pod or kubeconfig setting."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SCRUBBED_PREFIXES) and key not in _SCRUBBED
    }


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: str


def http_get(url: str, *, timeout: float = HTTP_TIMEOUT_S) -> HttpAnswer:
    """One GET; a refused or timed-out connection is status 0 with the error as body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers), error.read().decode().strip())
    except OSError as error:
        return HttpAnswer(0, {}, str(error))


class Sidecar:
    """One real ``python -m seedsvc serve`` process, configured only through its environment."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.base_url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.started_at = 0.0

    def __repr__(self) -> str:
        return f"Sidecar({self.name}, {self.base_url}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def seeds_url(self) -> str:
        if self.base_url is None:
            raise PodHarnessError(f"{self} has not started")
        return self.base_url + "/seeds"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = SIDECAR_START_TIMEOUT_S) -> Sidecar:
        """Launch and wait until it logs its listening address (port 0 picks a free one)."""
        if self.is_running():
            raise PodHarnessError(f"{self} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "seedsvc", "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.preexec_for_current_thread(),
        )
        processes.register(self._proc.pid)
        self._finalizer = weakref.finalize(self, processes.reap, self._proc.pid)
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                match = LISTENING.search(handle.read().decode("utf-8", "replace"))
            if match:
                self.base_url = f"http://{match['host']}:{match['port']}"
                return self
            if self._proc.poll() is not None:
                raise PodHarnessError(f"sidecar {self.name} exited with {self._proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PodHarnessError(f"sidecar {self.name} did not listen within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = SIDECAR_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (the sidecar answers waiting clients and exits), SIGKILL after ``timeout``."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            processes.kill_group(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                processes.kill_group(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        processes.forget(self._proc.pid)
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self._proc.returncode

    def get(self, path_and_query: str, *, timeout: float = HTTP_TIMEOUT_S) -> HttpAnswer:
        if self.base_url is None:
            raise PodHarnessError(f"{self} has not started")
        return http_get(self.base_url + path_and_query, timeout=timeout)

    def seeds(self) -> HttpAnswer:
        return self.get("/seeds")

    def is_ready(self) -> bool:
        return self.is_running() and self.get("/readyz").status == 200

    def wait_for_seeds(self, predicate: Callable[[HttpAnswer], bool], timeout: float, what: str) -> HttpAnswer:
        """Poll ``GET /seeds`` until ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.seeds()
            if predicate(answer):
                return answer
            if not self.is_running():
                raise PodHarnessError(f"sidecar {self.name} exited while waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PodHarnessError(
                    f"sidecar {self.name}: no {what} within {timeout:.0f}s; last {answer.status} {answer.body!r}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def wait_for_list(self, expected: list[str], timeout: float = 30.0) -> HttpAnswer:
        """Wait until ``GET /seeds`` answers 200 with exactly ``expected`` (in order)."""
        text = ",".join(expected)
        return self.wait_for_seeds(lambda a: a.status == 200 and a.body == text, timeout, f"seeds {text}")

    def rss_bytes(self) -> int:
        return processes.rss_bytes(self.pid) if self.is_running() and self.pid else 0

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return f"(no {self.log_path})"
        return data[-max_bytes:].decode("utf-8", "replace")


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
        **base_environment(),
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
        node_factory: NodeFactory,
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
        deadline = time.monotonic() + timeout
        while True:
            if self.errors:
                raise PodHarnessError(f"pod reconciler errors while waiting for {what}: {self.errors}")
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise PodHarnessError(f"timed out after {timeout:.0f}s waiting for {what}; events: {self.log()}")
            time.sleep(interval)

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
        if not node.grep_log(STARTUP_COMPLETE_MARKER, since_start=True):
            return False
        try:
            with socket.create_connection((node.address, NATIVE_PORT), timeout=1.0):
                return True
        except OSError:
            return False

    def _error(self, name: str, message: str) -> None:
        self._event(name, "ERROR " + message)
        self.errors.append(f"{name}: {message}")

    def _start_sidecar(self, pod: Pod) -> None:
        name, uid, ip = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
        sidecar = self.sidecar_factory(pod)
        try:
            sidecar.start()
        except PodHarnessError as exc:
            self._error(name, str(exc))
            return
        proc = PodProcesses(name=name, uid=uid, ip=ip, sidecar=sidecar)
        with self._lock:
            self.running[name] = proc
            self.history.append(proc)
        self._event(name, f"sidecar started on {sidecar.base_url} (uid {uid[:8]}, IP {ip})")

    def _start_node(self, proc: PodProcesses, pod: Pod) -> None:
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


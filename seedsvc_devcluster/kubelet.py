"""A kubelet and scheduler stand-in for the loopback control plane.

It registers fake Nodes, binds unscheduled pods to them round robin (Binding subresource), and plays
the kubelet for pods on those nodes: Running, a never-reused IP from 127.0.10.1 upwards (Linux routes
all of 127/8 to lo, so real processes can bind these), Ready/ContainersReady conditions and container
statuses, and the final grace-0 delete of a pod that is being deleted.

Readiness of a pod, first rule that applies:
1. annotation ``kubelet.seedsvc.test/ready: "true"|"false"`` (``set_ready()`` writes it);
2. with ``probe=True``, the first container's tcpSocket/httpGet readinessProbe, run against the pod IP;
3. ready.

It runs in two background threads (a list/watch of pods and one reconciling worker), so sync tests
call it directly and async tests through the ``async_*`` helpers, which run the waits in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.client
import ipaddress
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from seedsvc_devcluster import polling, ports
from seedsvc_devcluster.api_client import kube_json

READY_ANNOTATION = "kubelet.seedsvc.test/ready"
TERMINATION_DELAY_ANNOTATION = "kubelet.seedsvc.test/termination-delay-seconds"
"""Seconds the stand-in waits before finalising a deleted pod (overrides the option), so a test can
observe its endpoint as `terminating`."""

ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_IP = "127.0.0.1"
DEFAULT_SCHEDULER = "default-scheduler"

Pod = dict[str, Any]
"""Raw pod JSON as the API returns it."""

T = TypeVar("T")


class KubeletError(RuntimeError):
    """A wait timed out or the stand-in could not do its job."""


@dataclass(frozen=True)
class FakeNode:
    name: str
    zone: str


@dataclass(frozen=True)
class KubeletOptions:
    """Settings for the stand-in. Every timing is bounded and short: these are loopback round trips."""

    nodes: tuple[FakeNode, ...] = (
        FakeNode("node-a", "zone-a"),
        FakeNode("node-b", "zone-b"),
        FakeNode("node-c", "zone-c"),
    )
    first_pod_ip: str = "127.0.10.1"
    probe: bool = False
    """Run readinessProbes (tcpSocket/httpGet) against pod IPs; off by default because most tests
    start no process behind their pods."""

    probe_timeout_s: float = 1.0
    resync_period_s: float = 0.5
    """How often every known pod is re-reconciled: re-probed, late terminations finalised."""

    termination_delay_s: float = 0.0
    """Default wait before finalising a deleted pod (the annotation overrides it per pod)."""

    watch_timeout_s: int = 5
    """Server-side watch timeout: also bounds how long stop() waits for the watch thread."""

    request_timeout_s: float = 10.0


class PodIPAllocator:
    """Hands out loopback addresses in order and never twice, like a CNI with an endless range."""

    def __init__(self, first: str) -> None:
        self._next = ipaddress.IPv4Address(first)
        self._lock = threading.Lock()

    def allocate(self) -> str:
        with self._lock:
            while self._next.packed[-1] in (0, 255):  # skip network/broadcast-looking addresses
                self._next += 1
            address = self._next
            if not address.is_loopback:
                raise KubeletError(f"pod IP range exhausted at {address}")
            self._next += 1
            return str(address)


_allocators: dict[str, PodIPAllocator] = {}
_allocators_lock = threading.Lock()


def shared_allocator(first: str) -> PodIPAllocator:
    """One allocator per range for the whole process, so stand-ins on two clusters in one test run
    never hand out the same address (tests bind real listeners to pod IPs)."""
    with _allocators_lock:
        return _allocators.setdefault(first, PodIPAllocator(first))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(pod: Pod) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]


def pod_is_ready(pod: Pod) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def settled_pods(pods: list[Pod], count: int, *, ready: bool = True) -> list[Pod] | None:
    """The pods sorted by name if exactly ``count`` are live (not terminating), all with Ready ==
    ``ready`` and an IP; else None (still settling). Shared by the stand-in and real kubelets."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    good = [p for p in live if pod_is_ready(p) == ready and p.get("status", {}).get("podIP")]
    if len(live) == count and len(good) == count:
        return sorted(live, key=lambda p: p["metadata"]["name"])
    return None


@dataclass
class _PodState:
    """What the stand-in last wrote for one pod (by uid): the cache may lag our own writes."""

    ip: str
    ready: bool
    deleting_since: float | None = None


@dataclass
class Kubelet:
    """Fake nodes plus the scheduling and kubelet duties the tests need. Start with start()."""

    api_client: client.ApiClient
    options: KubeletOptions = field(default_factory=KubeletOptions)

    _pods: dict[tuple[str, str], Pod] = field(init=False, default_factory=dict)
    _states: dict[str, _PodState] = field(init=False, default_factory=dict)
    _events: queue.Queue[tuple[str, Any]] = field(init=False, default_factory=lambda: queue.Queue(maxsize=10000))
    """("upsert" | "delete", pod) from the watch, or ("listed", set of uids) after each relist."""
    _bound: set[str] = field(init=False, default_factory=set)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _threads: list[threading.Thread] = field(init=False, default_factory=list)
    _round_robin: int = field(init=False, default=0)
    _ips: PodIPAllocator = field(init=False)
    _errors: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._ips = shared_allocator(self.options.first_pod_ip)
        self._core = client.CoreV1Api(self.api_client)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, options: KubeletOptions | None = None) -> Kubelet:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]  # untyped upstream
        return cls(api_client, options or KubeletOptions())

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.options.nodes)

    # -- lifecycle --

    def start(self) -> Kubelet:
        self._register_nodes()
        for target, name in ((self._watch_loop, "kubelet-watch"), (self._work_loop, "kubelet-work")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.options.watch_timeout_s + self.options.request_timeout_s)
        self._threads.clear()

    @property
    def errors(self) -> list[str]:
        """Unexpected API errors the background threads saw (they log and go on)."""
        return list(self._errors)

    # -- nodes --

    def _register_nodes(self) -> None:
        for node in self.options.nodes:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node.name, "labels": {ZONE_LABEL: node.zone, HOSTNAME_LABEL: node.name}},
            }
            with contextlib.suppress(ApiException):  # already there from an earlier run on this cluster
                self._request("POST", "/api/v1/nodes", body)
            self._request("PATCH", f"/api/v1/nodes/{node.name}/status", self._node_status(), patch="merge")

    @staticmethod
    def _node_status() -> dict[str, Any]:
        now = _now()
        return {
            "status": {
                "addresses": [{"type": "InternalIP", "address": NODE_IP}],
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "seedsvc stand-in",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
            }
        }

    # -- watch thread: list, then watch from the list's resourceVersion; relist on 410 --

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                resource_version = self._relist()
                self._watch_from(resource_version)
            except ApiException as exc:
                if exc.status != 410:  # 410: our resourceVersion is too old; the next relist fixes it
                    self._note(f"watch: {exc.status} {exc.reason}")
                    self._stop.wait(0.5)
            except Exception as exc:
                self._note(f"watch: {exc!r}")
                self._stop.wait(0.5)

    def _relist(self) -> str:
        listing = self._request("GET", "/api/v1/pods")
        for pod in listing["items"]:
            self._events.put(("upsert", pod), timeout=self.options.request_timeout_s)
        # Pods deleted while no watch ran (an API server restart) must leave the cache too.
        uids = {pod["metadata"]["uid"] for pod in listing["items"]}
        self._events.put(("listed", uids), timeout=self.options.request_timeout_s)
        return str(listing["metadata"]["resourceVersion"])

    def _watch_from(self, resource_version: str) -> None:
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # untyped upstream
            self._core.list_pod_for_all_namespaces,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.options.watch_timeout_s,
            _request_timeout=self.options.watch_timeout_s + self.options.request_timeout_s,
            deserialize=False,
        )
        while not self._stop.is_set():
            event = next(stream, None)
            if event is None:
                return
            # With deserialize=False the 37.x client gives the JSON as "object" and no "raw_object".
            kind, obj = event["type"], event.get("raw_object", event.get("object"))
            if kind == "ERROR":
                raise ApiException(status=int(obj.get("code", 500)), reason=str(obj.get("message")))
            if kind != "BOOKMARK":
                self._events.put(
                    ("delete" if kind == "DELETED" else "upsert", obj), timeout=self.options.request_timeout_s
                )

    # -- worker thread: the only writer of pods --

    def _work_loop(self) -> None:
        next_resync = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self._absorb(*self._events.get(timeout=0.1))
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + self.options.resync_period_s
                for pod in list(self._pods.values()):
                    self._reconcile_safely(pod)

    def _absorb(self, kind: str, payload: Any) -> None:
        if kind == "listed":
            for pod in [p for p in self._pods.values() if p["metadata"]["uid"] not in payload]:
                self._forget(pod)
        elif kind == "delete":
            self._forget(payload)
        else:
            self._pods[_key(payload)] = payload
            self._reconcile_safely(payload)

    def _forget(self, pod: Pod) -> None:
        uid = pod["metadata"]["uid"]
        if self._pods.get(_key(pod), {}).get("metadata", {}).get("uid") == uid:
            del self._pods[_key(pod)]
        self._states.pop(uid, None)
        self._bound.discard(uid)

    def _reconcile_safely(self, pod: Pod) -> None:
        try:
            self._reconcile(pod)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone meanwhile, or a stale write: the next event retries
                self._note(f"{_key(pod)}: {exc.status} {exc.reason}")
        except Exception as exc:  # the API server may be down on purpose; the resync retries
            self._note(f"{_key(pod)}: {exc!r}")

    def _reconcile(self, pod: Pod) -> None:
        spec, meta = pod["spec"], pod["metadata"]
        node = spec.get("nodeName")
        if not node:
            # The cache may not show our binding yet; binding twice would only earn a 409.
            if spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER and meta["uid"] not in self._bound:
                self._bind(pod)
                self._bound.add(meta["uid"])
            return
        if node not in self.node_names:
            return
        state = self._states.get(meta["uid"])
        if meta.get("deletionTimestamp"):
            self._finish_deletion(pod, state)
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        if state is None:
            self._start_pod(pod)
            return
        ready = self._desired_ready(pod, state.ip)
        if ready != state.ready:
            self._write_status(pod, state.ip, ready)
            state.ready = ready

    def _bind(self, pod: Pod) -> None:
        namespace, name = _key(pod)
        node = self.options.nodes[self._round_robin % len(self.options.nodes)].name
        self._round_robin += 1
        self._request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    def _start_pod(self, pod: Pod) -> None:
        existing = pod.get("status", {}).get("podIP")
        # A pod that already has an IP was started by an earlier stand-in on this cluster: keep it.
        ip = existing or self._ips.allocate()
        ready = self._desired_ready(pod, ip)
        self._write_status(pod, ip, ready, started=not existing)
        self._states[pod["metadata"]["uid"]] = _PodState(ip=ip, ready=ready)

    def _finish_deletion(self, pod: Pod, state: _PodState | None) -> None:
        delay = self.options.termination_delay_s
        annotation = (pod["metadata"].get("annotations") or {}).get(TERMINATION_DELAY_ANNOTATION)
        if annotation is not None:
            delay = float(annotation)
        if state is None:
            state = self._states.setdefault(pod["metadata"]["uid"], _PodState(ip="", ready=False))
        if state.deleting_since is None:
            state.deleting_since = time.monotonic()
        if time.monotonic() - state.deleting_since < delay:
            return  # the resync loop comes back
        namespace, name = _key(pod)
        self._request(
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": pod["metadata"]["uid"]},
            },
        )

    # -- status --

    def _write_status(self, pod: Pod, ip: str, ready: bool, *, started: bool = False) -> None:
        namespace, name = _key(pod)
        now = _now()
        flag = "True" if ready else "False"
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
        ]
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": conditions,
            "containerStatuses": [self._container_status(pod, c, ready) for c in pod["spec"]["containers"]],
        }
        if started:
            status |= {
                "hostIP": NODE_IP,
                "hostIPs": [{"ip": NODE_IP}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": now,
            }
        self._request(
            "PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": status}, patch="strategic"
        )

    @staticmethod
    def _container_status(pod: Pod, container: dict[str, Any], ready: bool) -> dict[str, Any]:
        started_at = pod.get("status", {}).get("startTime") or _now()
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"seedsvc-test://{pod['metadata']['uid']}/{container['name']}",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started_at}},
        }

    # -- readiness --

    def _desired_ready(self, pod: Pod, ip: str) -> bool:
        annotation = (pod["metadata"].get("annotations") or {}).get(READY_ANNOTATION)
        if annotation in ("true", "false"):
            return bool(annotation == "true")
        containers = pod["spec"].get("containers") or []
        probe = containers[0].get("readinessProbe") if containers else None
        if self.options.probe and probe and ("tcpSocket" in probe or "httpGet" in probe):
            return self._run_probe(probe, containers[0], ip)
        return True

    def _run_probe(self, probe: dict[str, Any], container: dict[str, Any], ip: str) -> bool:
        if not ipaddress.ip_address(ip).is_loopback:  # never probe anything off this machine
            return False
        handler = probe.get("tcpSocket") or probe["httpGet"]
        port = _resolve_port(handler.get("port"), container)
        if port is None:
            return False
        timeout = min(float(probe.get("timeoutSeconds", 1)), self.options.probe_timeout_s)
        if "tcpSocket" in probe:
            return ports.tcp_connects(ip, port, timeout)
        return _http_probe(ip, port, str(handler.get("path", "/")), timeout)

    # -- API plumbing --

    def _request(self, method: str, path: str, body: Any = None, *, patch: str | None = None) -> Any:
        content_type = {
            None: "application/json",
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch]
        return kube_json(
            self.api_client, method, path, body, content_type=content_type, timeout_s=self.options.request_timeout_s
        )

    def _note(self, message: str) -> None:
        if len(self._errors) < 1000:  # bounded: a broken cluster must not eat memory
            self._errors.append(message)

    # -- helpers for tests --

    def set_ready(self, namespace: str, name: str, ready: bool | None) -> None:
        """Force a pod ready or unready; None returns it to the probe/default rule."""
        value = None if ready is None else ("true" if ready else "false")
        self._request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"metadata": {"annotations": {READY_ANNOTATION: value}}},
            patch="merge",
        )

    def list_pods(self, namespace: str, label_selector: str = "") -> list[Pod]:
        query = {"labelSelector": label_selector} if label_selector else None
        pods = kube_json(self.api_client, "GET", f"/api/v1/namespaces/{namespace}/pods", query=query)
        return list(pods["items"])

    def wait_for_pods(
        self, namespace: str, label_selector: str, count: int, *, ready: bool = True, timeout: float = 60.0
    ) -> list[Pod]:
        """Wait until exactly `count` live (not terminating) pods match, all with Ready == `ready`
        and an IP; returns them sorted by name."""

        def matching() -> list[Pod] | None:
            return settled_pods(self.list_pods(namespace, label_selector), count, ready=ready)

        return poll(matching, timeout=timeout, what=f"{count} pods {label_selector!r} ready={ready} in {namespace}")

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        """Delete like kubectl does: gracefully, so the stand-in finalises it (after its delay)."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        self._request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)

    def wait_for_pod_gone(self, namespace: str, name: str, *, uid: str | None = None, timeout: float = 60.0) -> None:
        """Wait until the pod (or, with `uid`, that incarnation of it) no longer exists."""

        def gone() -> bool | None:
            try:
                pod = self._request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return True if uid is not None and pod["metadata"]["uid"] != uid else None

        poll(gone, timeout=timeout, what=f"pod {namespace}/{name} to be gone")

    async def async_wait_for_pods(
        self, namespace: str, label_selector: str, count: int, *, ready: bool = True, timeout: float = 60.0
    ) -> list[Pod]:
        return await asyncio.to_thread(
            self.wait_for_pods, namespace, label_selector, count, ready=ready, timeout=timeout
        )

    async def async_set_ready(self, namespace: str, name: str, ready: bool | None) -> None:
        await asyncio.to_thread(self.set_ready, namespace, name, ready)


def poll(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Call `check` until it returns something other than None (or False); KubeletError after `timeout`."""
    return polling.poll(check, timeout=timeout, what=what, interval=interval, error=KubeletError)


def _resolve_port(port: Any, container: dict[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def _http_probe(ip: str, port: int, path: str, timeout: float) -> bool:
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"User-Agent": "kube-probe/seedsvc-test"})
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def dump(obj: Any) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(obj, sort_keys=True)[:4000]

"""The Kubernetes source against the real control plane (seedsvc_devcluster/go): list/watch, 410, RBAC, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from seedsvc.discovery import Discovery
from seedsvc.records import Identity
from seedsvc.selection import Policy
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, Restart, SourceEvent, View
from seedsvc.sources.keepalive import keepalive_socket
from seedsvc.sources.kubernetes import KubernetesSource
from seedsvc.sources.kubernetes import client as client_module
from seedsvc.sources.kubernetes.auth import resolve_access
from seedsvc.sources.kubernetes.client import ApiClient, Timeouts
from seedsvc.state import SeedState
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions, issue_cert, make_ca
from seedsvc_devcluster.faults import HidingApiProxy, TcpProxy
from seedsvc_devcluster.kubelet import ZONE_LABEL, Kubelet
from tests.cluster_fixtures import ControlPlaneFactory
from tests.discovery_run import running, wait_for_state

pytestmark = pytest.mark.controlplane

WAIT = 60.0  # bound for anything the controllers and the watch should do within a few seconds


class Recorder:
    """Runs a source's updates() in a task and keeps every event, so tests can wait on them."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.events: list[SourceEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.source.updates():
            self.events.append(event)
            self._changed.set()

    @property
    def views(self) -> list[View]:
        return [e for e in self.events if isinstance(e, View)]

    async def wait_for(self, what: str, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if self._task.done():
                self._task.result()
            result = condition()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events[-8:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def view_where(self, what: str, predicate: Callable[[View], bool], timeout: float = WAIT) -> View:
        return await self.wait_for(  # type: ignore[no-any-return]
            what, lambda: self.views and predicate(self.views[-1]) and self.views[-1], timeout
        )

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def recording(settings: Settings) -> AsyncIterator[Recorder]:
    recorder = Recorder(KubernetesSource(settings))
    try:
        yield recorder
    finally:
        await recorder.close()


def admin_settings(plane: ControlPlane, namespace: str, **changes: Any) -> Settings:
    return Settings.build(kubeconfig=plane.kubeconfig, namespace=namespace, backoff_max=2.0, **changes)


def incluster_settings(plane: ControlPlane, namespace: str, sa_dir: Path, **changes: Any) -> Settings:
    env = plane.incluster_env()
    return Settings.build(
        namespace=namespace,
        kubernetes_host=env["KUBERNETES_SERVICE_HOST"],
        kubernetes_port=int(env["KUBERNETES_SERVICE_PORT"]),
        serviceaccount_dir=sa_dir,
        backoff_max=2.0,
        **changes,
    )


def create(plane: ControlPlane, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    group_version = obj["apiVersion"]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    plural = {"EndpointSlice": "endpointslices", "StatefulSet": "statefulsets", "RoleBinding": "rolebindings"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    return plane.api("POST", f"{prefix}/namespaces/{namespace}/{plural}", obj)  # type: ignore[no-any-return]


@dataclass(frozen=True, order=True)
class PodTruth:
    """One running, non-terminating pod as the API has it, with its node's zone."""

    ordinal: int
    name: str
    ip: str
    ready: bool
    zone: str


def endpoint_truth(plane: ControlPlane, namespace: str, app: str) -> list[PodTruth]:
    """Every running, non-terminating pod of ``app``, straight from the API, in ordinal order."""
    zones = {n["metadata"]["name"]: n["metadata"]["labels"].get(ZONE_LABEL)
             for n in plane.api("GET", "/api/v1/nodes")["items"]}
    pods = plane.api("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}")["items"]
    truth = []
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        name = pod["metadata"]["name"]
        truth.append(PodTruth(int(name.rsplit("-", 1)[1]), name, ip, conditions.get("Ready") == "True",
                              zones[pod["spec"]["nodeName"]]))
    return sorted(truth)


def expected_seeds(truth: list[PodTruth], count: int) -> tuple[str, ...]:
    """Rules 1-4 written out for pods that all have zones: ready pods only; zones in name order take
    turns, each giving its lowest ordinal not yet taken, until ``count``; served in ordinal order."""
    by_zone: dict[str, list[PodTruth]] = {}
    for pod in truth:
        if pod.ready:
            by_zone.setdefault(pod.zone, []).append(pod)
    turns = [pods[depth] for depth in range(len(truth)) for _, pods in sorted(by_zone.items()) if depth < len(pods)]
    return tuple(pod.ip for pod in sorted(turns[:count]))


def as_truth(view: View) -> set[tuple[str, str, bool, str | None]]:
    return {(e.pod or "", e.address, e.ready, e.zone) for e in view.endpoints if not e.terminating}


def truth_set(truth: list[PodTruth]) -> set[tuple[str, str, bool, str | None]]:
    return {(p.name, p.ip, p.ready, p.zone) for p in truth}


async def test_seeds_follow_pods_becoming_ready_unready_deleted_and_scaled(
    control_plane: ControlPlane, kubelet: Kubelet, namespace: str
) -> None:
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=3))
    state = SeedState()
    discovery = Discovery(
        source=KubernetesSource(admin_settings(control_plane, namespace)),
        policy=Policy(count=3, flap_grace=0),
        identity=Identity(),
        state=state,
    )

    async def served_matches_truth(what: str, check: Callable[[list[PodTruth]], bool]) -> list[PodTruth]:
        """Wait until the pods are as ``check`` wants and the served list is exactly the seeds the
        rules pick from them (which pods, by address, in order); return the pods."""
        deadline = time.monotonic() + WAIT
        while True:
            truth = await asyncio.to_thread(endpoint_truth, control_plane, namespace, "cassandra")
            served = state.snapshot.seeds
            if check(truth) and served == expected_seeds(truth, 3):
                return truth
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: served {served}, expected {expected_seeds(truth, 3)}, truth {truth}")
            await asyncio.sleep(0.2)

    def names(truth: list[PodTruth], *, ready: bool = True) -> set[str]:
        return {p.name for p in truth if p.ready is ready}

    three = {"cassandra-0", "cassandra-1", "cassandra-2"}
    async with running(discovery):
        truth = await served_matches_truth("3 ready pods", lambda t: names(t) == three)
        first = state.snapshot.seeds
        # Three pods bound round robin to three nodes in three zones: one seed per zone, all of them.
        assert len({p.zone for p in truth}) == 3
        assert first == tuple(p.ip for p in truth)

        kubelet.set_ready(namespace, "cassandra-1", False)
        truth = await served_matches_truth("pod 1 unready", lambda t: names(t, ready=False) == {"cassandra-1"})
        assert state.snapshot.seeds == tuple(p.ip for p in truth if p.name != "cassandra-1")

        kubelet.set_ready(namespace, "cassandra-1", True)
        await served_matches_truth("pod 1 ready again", lambda t: names(t) == three)
        assert state.snapshot.seeds == first

        control_plane.api(
            "PUT",
            f"/apis/apps/v1/namespaces/{namespace}/statefulsets/cassandra/scale",
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": "cassandra", "namespace": namespace},
                "spec": {"replicas": 5},
            },
        )
        truth = await served_matches_truth("scaled to 5", lambda t: len(names(t)) == 5)
        # Pods 0-2 still cover every zone with the lowest ordinals: scaling up changes nothing.
        assert state.snapshot.seeds == first

        old_ip = next(p.ip for p in truth if p.name == "cassandra-0")
        kubelet.delete_pod(namespace, "cassandra-0")
        truth = await served_matches_truth(
            "pod 0 recreated with a new IP",
            lambda t: any(p.name == "cassandra-0" and p.ip != old_ip and p.ready for p in t) and len(names(t)) == 5,
        )
        assert old_ip not in state.snapshot.seeds
        assert next(p.ip for p in truth if p.name == "cassandra-0") in state.snapshot.seeds

        control_plane.api(
            "PUT",
            f"/apis/apps/v1/namespaces/{namespace}/statefulsets/cassandra/scale",
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": "cassandra", "namespace": namespace},
                "spec": {"replicas": 2},
            },
        )
        two = {"cassandra-0", "cassandra-1"}
        truth = await served_matches_truth("scaled to 2", lambda t: {p.name for p in t} == two)
        assert state.snapshot.seeds == tuple(p.ip for p in truth)
        assert not state.snapshot.stale


async def test_view_carries_zones_pod_names_and_readiness_from_endpointslices(
    control_plane: ControlPlane, kubelet: Kubelet, namespace: str
) -> None:
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=3))
    async with recording(admin_settings(control_plane, namespace)) as recorder:
        view = await recorder.view_where("3 ready endpoints", lambda v: sum(e.ready for e in v.endpoints) == 3)
    truth = endpoint_truth(control_plane, namespace, "cassandra")
    assert [p.name for p in truth] == ["cassandra-0", "cassandra-1", "cassandra-2"]
    # Each pod by name, with its own address, readiness and its node's zone: not just the right counts.
    assert as_truth(view) == truth_set(truth)
    assert {e.zone for e in view.endpoints} == {"zone-a", "zone-b", "zone-c"}
    assert all(e.address.startswith("127.0.") for e in view.endpoints)


async def test_a_410_during_the_watch_is_survived_without_missing_a_change(
    control_plane_factory: ControlPlaneFactory, tmp_path: Path
) -> None:
    # Without the watch cache the API server reads etcd directly, so compacting etcd past the
    # watcher's resourceVersion makes its next watch fail with 410 Gone.
    plane = await asyncio.to_thread(control_plane_factory, ControlPlaneOptions(watch_cache=False))
    namespace = "default"
    create(plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.1.0.1", True), ("db-1", "10.1.0.2", True)]))
    host, port = plane.server.removeprefix("https://").rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    kubeconfig = tmp_path / "via-proxy.kubeconfig"
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    kubeconfig.write_text(yaml.safe_dump(config))
    settings = Settings.build(
        kubeconfig=kubeconfig,
        namespace=namespace,
        service="db",
        connect_timeout=30,
        request_timeout=30,
        backoff_max=1.0,
    )
    try:
        async with recording(settings) as recorder:
            await recorder.view_where("initial list", lambda v: len(v.endpoints) == 2)
            # A change seen through the watch proves the stream is open: the partition below must cut
            # an open watch (resumed from its resourceVersion: the 410), not the request opening it
            # (a failure, then a relist, which tests/test_kubernetes_watch.py covers).
            path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1"
            slice_ = plane.api("GET", path)
            slice_["endpoints"].append({"addresses": ["10.1.0.3"], "conditions": {"ready": True},
                                        "targetRef": {"kind": "Pod", "name": "db-2", "namespace": namespace}})
            plane.api("PUT", path, slice_)
            await recorder.view_where("the watch delivering a change", lambda v: len(v.endpoints) == 3)

            proxy.partition()  # the watcher is cut off; its reconnect hangs until heal()
            await recorder.wait_for(
                "the cut to be noticed", lambda: any(isinstance(e, Restart) for e in recorder.events)
            )
            slice_ = plane.api("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1")
            slice_["endpoints"][1]["conditions"]["ready"] = False
            plane.api("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1", slice_)
            compacted = plane.compact_etcd()
            assert compacted > 0

            proxy.heal()
            # Resumed from a compacted revision, kube-apiserver 1.37 without its watch cache answers a
            # 410 or, when the compaction lands between two watch events, an in-stream 500 ("etcd
            # event received with PrevKv=nil"); either way the source relists.
            await recorder.wait_for(
                "a 410 (or 500) relist",
                lambda: any(
                    (isinstance(e, Restart) and e.reason == "expired")
                    or (isinstance(e, Failure) and e.reason == "server_error")
                    for e in recorder.events
                ),
            )
            view = await recorder.view_where(
                "the change made while cut off", lambda v: any(not e.ready for e in v.endpoints)
            )
            assert {(e.pod, e.ready) for e in view.endpoints} == {("db-0", True), ("db-1", False), ("db-2", True)}
    finally:
        await proxy.stop()


async def test_forbidden_is_a_visible_error_never_an_empty_list(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    create(control_plane, namespace, k8s.service_account("seedsvc"))
    create(
        control_plane, namespace, k8s.endpoint_slice("cassandra-1", "cassandra", [("cassandra-0", "10.2.0.1", True)])
    )
    sa_dir = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "sa")
    state = SeedState()
    discovery = Discovery(
        source=KubernetesSource(incluster_settings(control_plane, namespace, sa_dir)),
        policy=Policy(),
        identity=Identity("cassandra-3"),
        state=state,
    )
    async with running(discovery):
        await wait_for_state(state, lambda s: s.last_error_reason == "forbidden", "the 403 to be reported")
        assert not state.snapshot.servable  # nothing to serve, and nothing pretends otherwise
        assert "403" in (state.snapshot.last_error or "")
        assert f"system:serviceaccount:{namespace}:seedsvc" in (state.snapshot.last_error or "")

        create(control_plane, namespace, k8s.role_for_endpointslices())
        create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
        await wait_for_state(state, lambda s: s.seeds == ("10.2.0.1",), "the list once RBAC allows it")
        assert state.snapshot.last_error is None


async def test_a_rotated_token_is_picked_up_when_the_old_one_is_revoked(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    create(control_plane, namespace, k8s.service_account("seedsvc"))
    create(control_plane, namespace, k8s.role_for_endpointslices())
    create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    create(control_plane, namespace, k8s.secret("token-a"))
    create(
        control_plane, namespace, k8s.endpoint_slice("cassandra-1", "cassandra", [("cassandra-0", "10.3.0.1", True)])
    )
    sa_dir = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "sa")
    (sa_dir / "token").write_text(control_plane.mint_token(namespace, "seedsvc", bound_secret="token-a"))
    # A long re-read interval: only the 401 can make the source read the new token.
    settings = incluster_settings(control_plane, namespace, sa_dir, token_reread=3600, watch_timeout=2)
    async with recording(settings) as recorder:
        await recorder.view_where("initial list", lambda v: len(v.endpoints) == 1)
        (sa_dir / "token").write_text(control_plane.mint_token(namespace, "seedsvc"))  # the kubelet rotates
        control_plane.api("DELETE", f"/api/v1/namespaces/{namespace}/secrets/token-a")  # old token revoked
        await recorder.wait_for(
            "a 401 with the revoked token",
            lambda: any(isinstance(e, Failure) and e.reason == "unauthorized" for e in recorder.events),
        )
        create(
            control_plane,
            namespace,
            k8s.endpoint_slice("cassandra-2", "cassandra", [("cassandra-1", "10.3.0.2", True)]),
        )
        view = await recorder.view_where("the change after rotation", lambda v: len(v.endpoints) == 2)
        assert {e.address for e in view.endpoints} == {"10.3.0.1", "10.3.0.2"}


async def test_an_untrusted_api_server_certificate_is_refused(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    sa_dir = control_plane.write_incluster_files(namespace, "default", tmp_path / "sa")
    other_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    (sa_dir / "ca.crt").write_bytes(other_ca.read_bytes())
    async with recording(incluster_settings(control_plane, namespace, sa_dir)) as recorder:
        failure = await recorder.wait_for(
            "a TLS failure", lambda: next((e for e in recorder.events if isinstance(e, Failure)), None)
        )
    assert failure.reason == "tls"
    assert "certificate" in failure.detail
    assert not recorder.views


async def test_a_kubeconfig_that_skips_tls_verification_is_refused(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    cluster.pop("certificate-authority-data", None)
    cluster["insecure-skip-tls-verify"] = True
    path = tmp_path / "insecure.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    async with recording(admin_settings(control_plane, namespace).replace(kubeconfig=path)) as recorder:
        failure = await recorder.wait_for(
            "a config failure", lambda: next((e for e in recorder.events if isinstance(e, Failure)), None)
        )
    assert failure.reason == "config"
    assert "insecure-skip-tls-verify" in failure.detail


async def test_v1_endpoints_when_asked(control_plane: ControlPlane, kubelet: Kubelet, namespace: str) -> None:
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=2))
    kubelet.wait_for_pods(namespace, "app=cassandra", 2)
    async with recording(admin_settings(control_plane, namespace, api="endpoints")) as recorder:
        view = await recorder.view_where("2 ready endpoints", lambda v: sum(e.ready for e in v.endpoints) == 2)
    assert {e.pod for e in view.endpoints} == {"cassandra-0", "cassandra-1"}
    assert recorder.source.resource_kind == "endpoints"


async def test_falls_back_to_v1_endpoints_when_endpointslices_are_not_served(
    control_plane: ControlPlane, kubelet: Kubelet, namespace: str, tmp_path: Path
) -> None:
    # The real API server behind a proxy that hides discovery.k8s.io, as a pre-1.21 cluster would.
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=2))
    create(control_plane, namespace, k8s.service_account("seedsvc"))
    role = k8s.role_for_endpointslices()
    role["rules"].append({"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]})
    create(control_plane, namespace, role)
    create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    (tmp_path / "proxy-ca").mkdir()
    proxy_ca = make_ca(tmp_path / "proxy-ca")
    proxy_cert = issue_cert(
        proxy_ca, tmp_path / "proxy-ca", stem="proxy", common_name="proxy", ip_addresses=("127.0.0.1",)
    )
    proxy = await HidingApiProxy(
        control_plane.server,
        str(control_plane.ca_file),
        cert=str(proxy_cert.cert),
        key=str(proxy_cert.key),
        hidden_prefixes=("/apis/discovery.k8s.io",),
    ).start()
    sa_dir = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "sa")
    (sa_dir / "ca.crt").write_bytes(proxy_ca.cert.read_bytes())
    settings = incluster_settings(control_plane, namespace, sa_dir).replace(kubernetes_port=proxy.port)
    try:
        async with recording(settings) as recorder:
            view = await recorder.view_where("2 ready endpoints", lambda v: sum(e.ready for e in v.endpoints) == 2)
            assert any(isinstance(e, Restart) and e.reason == "fallback-to-endpoints" for e in recorder.events)
        assert recorder.source.resource_kind == "endpoints"
        assert proxy.hidden_requests >= 1
        assert {e.pod for e in view.endpoints} == {"cassandra-0", "cassandra-1"}
    finally:
        await proxy.stop()


async def test_a_client_closed_mid_watch_has_closed_its_connection_when_it_returns(
    control_plane: ControlPlane, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leaving a watch closes its connection instead of pooling it, and a TLS close takes a few loop
    # turns: a caller whose loop ends right after the client (a sidecar shutting down, a test) must
    # not leave that socket half-closed (it used to surface as a ResourceWarning in a later test).
    sockets: list[socket.socket] = []

    def recorded(*args: Any, **kwargs: Any) -> socket.socket:
        sockets.append(keepalive_socket(*args, **kwargs))
        return sockets[-1]

    monkeypatch.setattr(client_module, "keepalive_socket", recorded)
    create(control_plane, namespace, k8s.headless_service())
    access = await resolve_access(admin_settings(control_plane, namespace))
    resource = f"/api/v1/namespaces/{namespace}/services"
    async with ApiClient(access, Timeouts(connect=5, request=10)) as client:
        listing = await client.get(resource)
        params = {"watch": "1", "resourceVersion": "0"}
        async with contextlib.aclosing(client.watch(resource, params, server_timeout=60)) as events:
            first = await anext(events)
            assert first["type"] == "ADDED"
        assert listing["items"]
    assert sockets, "the client connected through its socket factory"
    assert [s.fileno() for s in sockets] == [-1] * len(sockets)


async def test_an_api_server_restart_keeps_the_last_list_marked_stale(
    control_plane_factory: ControlPlaneFactory,
) -> None:
    plane = await asyncio.to_thread(control_plane_factory, ControlPlaneOptions())
    create(plane, "default", k8s.endpoint_slice("db-1", "db", [("db-0", "10.4.0.1", True), ("db-1", "10.4.0.2", True)]))
    state = SeedState()
    discovery = Discovery(
        source=KubernetesSource(admin_settings(plane, "default", service="db", connect_timeout=1, request_timeout=2)),
        policy=Policy(),
        identity=Identity(),
        state=state,
    )
    async with running(discovery):
        await wait_for_state(state, lambda s: s.seeds == ("10.4.0.1", "10.4.0.2"), "first list")
        await asyncio.to_thread(plane.stop_apiserver)
        await wait_for_state(state, lambda s: s.stale, "stale while the API server is down")
        assert state.snapshot.seeds == ("10.4.0.1", "10.4.0.2")
        assert state.snapshot.last_error_reason in {"unreachable", "timeout", "closed"}
        await asyncio.to_thread(plane.start_apiserver)
        await wait_for_state(state, lambda s: not s.stale, "fresh after restart")
        create(plane, "default", k8s.endpoint_slice("db-2", "db", [("db-2", "10.4.0.3", True)]))
        await wait_for_state(state, lambda s: "10.4.0.3" in s.seeds, "a change after the restart")

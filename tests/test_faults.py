"""Fault injection against the real sidecar process and the real control plane.

Each test breaks one thing, checks that no empty list is ever served and the last good list is kept
and marked stale, measures how long recovery takes once the fault is gone, and checks that nothing
leaked (file descriptors and threads of the sidecar process). Recovery times are printed at the end
of the run and written to benchmarks/results/fault-recovery.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.faults import TcpProxy
from tests.cluster_fixtures import ControlPlaneFactory
from tests.sidecar_fixtures import Served, start
from tests.test_kubernetes_source import create

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "fault-recovery.json"
WAIT = 90.0
_recoveries: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def recovery_report() -> Iterator[None]:
    yield
    if _recoveries:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(_recoveries, indent=2) + "\n")
        print("\nrecovery after the fault was removed:")
        for name, seconds in _recoveries.items():
            print(f"  {name:45} {seconds:6.2f} s")


def resources(served: Served) -> tuple[int, int]:
    """Open file descriptors and threads of the sidecar process."""
    pid = served.process.pid
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Threads:")
        )
    )
    return fds, threads


class Watcher:
    """Polls a sidecar's /seeds and fails the test on any empty 200 or 503 after the first list."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.first: list[str] | None = None
        self.samples = 0

    def document(self) -> dict[str, Any]:
        status, _, body = self.served.get("/seeds?format=json")
        if self.first is not None:
            assert status == 200, f"list lost during the fault: {status} {body}"
        if status == 200:
            document: dict[str, Any] = json.loads(body)
            assert document["seeds"], "an empty 200"
            self.first = self.first or document["seeds"]
            self.samples += 1
            return document
        return {"seeds": [], "stale": None}

    def until(self, what: str, condition: Callable[[dict[str, Any]], bool], timeout: float = WAIT) -> float:
        started = time.monotonic()
        while True:
            document = self.document()
            if condition(document):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                tail = "".join(self.served.log[-15:])
                raise AssertionError(f"timed out waiting for {what}; last {document}; log:\n{tail}")
            time.sleep(0.2)


def kubeconfig_via(plane: ControlPlane, port: int, directory: Path) -> Path:
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = directory / "via-proxy.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def sidecar_env(kubeconfig: Path, namespace: str, service: str, **extra: str) -> dict[str, str]:
    return {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace, "CASSANDRA_SERVICE": service, **extra}


def test_api_server_down_for_two_minutes_then_back(
    control_plane_factory: ControlPlaneFactory, served_processes: list[Served]
) -> None:
    plane = control_plane_factory(ControlPlaneOptions())
    create(plane, "default", k8s.endpoint_slice("db-1", "db", [("db-0", "10.7.0.1", True), ("db-1", "10.7.0.2", True)]))
    # Production backoff (30 s cap): recovery time below is what an operator would see.
    served = start(env=sidecar_env(plane.kubeconfig, "default", "db"))
    served_processes.append(served)
    watcher = Watcher(served)
    watcher.until("the first list", lambda d: d["seeds"] == ["10.7.0.1", "10.7.0.2"])
    baseline = resources(served)

    plane.stop_apiserver()
    watcher.until("stale", lambda d: d["stale"] is True)
    outage_end = time.monotonic() + 120
    while time.monotonic() < outage_end:
        document = watcher.document()
        assert document["seeds"] == ["10.7.0.1", "10.7.0.2"] and document["stale"] is True
        time.sleep(1)
    plane.start_apiserver()
    _recoveries["API server down 120 s"] = watcher.until("fresh", lambda d: d["stale"] is False)
    create(plane, "default", k8s.endpoint_slice("db-2", "db", [("db-2", "10.7.0.3", True)]))
    watcher.until("a change after recovery", lambda d: "10.7.0.3" in d["seeds"])

    fds, threads = resources(served)
    assert fds <= baseline[0] + 2, f"file descriptors grew from {baseline[0]} to {fds}"
    assert threads <= baseline[1] + 1, f"threads grew from {baseline[1]} to {threads}"
    assert served.get("/healthz")[0] == 200


async def test_watch_streams_cut_over_and_over_miss_no_change(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.8.0.1", True)]))
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    try:
        kubeconfig = kubeconfig_via(control_plane, proxy.port, tmp_path)
        served = await asyncio.to_thread(start, env=sidecar_env(kubeconfig, namespace, "db", SEEDSVC_BACKOFF_MAX="1"))
        served_processes.append(served)
        watcher = Watcher(served)
        await asyncio.to_thread(watcher.until, "the first list", lambda d: d["seeds"] == ["10.8.0.1"])
        baseline = resources(served)
        slowest = 0.0
        for round_ in range(2, 12):
            proxy.cut()  # the stream dies mid-flight, as when a load balancer drops it
            endpoints = [(f"db-{i}", f"10.8.0.{i + 1}", True) for i in range(round_)]
            slice_ = k8s.endpoint_slice("db-1", "db", endpoints)
            current = control_plane.api("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1")
            slice_["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            control_plane.api("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1", slice_)
            addresses = {ip for _, ip, _ in endpoints}
            took = await asyncio.to_thread(
                watcher.until,
                f"round {round_}",
                lambda d, want=addresses: {c["address"] for c in d["candidates"]} == want,  # type: ignore[misc]
            )
            slowest = max(slowest, took)
        _recoveries["watch stream cut (slowest of 10)"] = slowest
        _, _, metrics = served.get("/metrics")
        assert 'seedsvc_watch_restarts_total{reason="server-closed",source="kubernetes"}' in metrics or (
            'reason="closed"' in metrics
        )
        fds, threads = resources(served)
        assert fds <= baseline[0] + 2 and threads <= baseline[1] + 1, (baseline, fds, threads)
    finally:
        await proxy.stop()


def test_rbac_removed_then_restored(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.service_account("seedsvc"))
    create(control_plane, namespace, k8s.role_for_endpointslices())
    create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.9.0.1", True)]))
    sa_dir = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "sa")
    env = {
        **control_plane.incluster_env(),
        "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
        "POD_NAMESPACE": namespace,
        "CASSANDRA_SERVICE": "db",
        "SEEDSVC_WATCH_TIMEOUT": "2",  # reconnect often, so each new request meets the changed RBAC
        "SEEDSVC_BACKOFF_MAX": "2",
    }
    served = start(env=env)
    served_processes.append(served)
    watcher = Watcher(served)
    watcher.until("the first list", lambda d: d["seeds"] == ["10.9.0.1"])

    control_plane.api("DELETE", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/seedsvc")
    watcher.until("stale after the RoleBinding is gone", lambda d: d["stale"] is True)
    status, _, body = served.get("/readyz")
    detail = json.loads(body)
    assert status == 200 and detail["last_error_reason"] == "forbidden" and detail["stale"] is True
    assert 'reason="forbidden"' in served.get("/metrics")[2]

    create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    _recoveries["RBAC restored"] = watcher.until("fresh after RBAC is restored", lambda d: d["stale"] is False)


async def test_sigkill_then_restart_with_the_api_unreachable_serves_the_last_list_at_once(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.10.0.1", True)]))
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    state_file = tmp_path / "state" / "seeds.json"
    try:
        env = sidecar_env(
            kubeconfig_via(control_plane, proxy.port, tmp_path),
            namespace,
            "db",
            SEEDSVC_STATE_FILE=str(state_file),
            SEEDSVC_BACKOFF_MAX="1",
            SEEDSVC_CONNECT_TIMEOUT="1",
        )
        first = await asyncio.to_thread(start, env=env)
        served_processes.append(first)
        await asyncio.to_thread(Watcher(first).until, "the first list", lambda d: d["seeds"] == ["10.10.0.1"])
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)

        proxy.partition()  # the API server is unreachable when the sidecar comes back
        second = await asyncio.to_thread(start, env=env)
        served_processes.append(second)
        status, headers, body = second.get("/seeds")
        assert (status, body) == (200, "10.10.0.1"), "the state file must be served from the first request"
        assert headers["X-Seedsvc-Stale"] == "true"
        assert time.monotonic() - second.started < 5  # interpreter start-up included

        proxy.heal()
        took = await asyncio.to_thread(Watcher(second).until, "fresh", lambda d: d["stale"] is False)
        _recoveries["API reachable again after SIGKILL + restart"] = took
    finally:
        await proxy.stop()

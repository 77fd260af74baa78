"""The real `seedsvc serve` / `check` / `seeds` processes against the real control plane, as in a pod."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from tests.cluster_fixtures import ControlPlaneFactory
from tests.sidecar_fixtures import Served, run, start
from tests.test_kubernetes_source import create

pytestmark = pytest.mark.controlplane

WAIT = 60.0


def pod_env(plane: ControlPlane, namespace: str, sa_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **plane.incluster_env(),
        "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir),
        "POD_NAMESPACE": namespace,
        "SEEDSVC_BACKOFF_MAX": "1",
        **extra,
    }


def eventually(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def metric(served: Served, name: str, **labels: str) -> float | None:
    _, _, text = served.get("/metrics")
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        unlabelled = head == name and not labels
        labelled = head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items())
        if unlabelled or labelled:
            return float(value)
    return None


def test_a_403_shows_in_readyz_metrics_and_check_never_as_an_empty_list(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.service_account("seedsvc"))
    create(
        control_plane, namespace, k8s.endpoint_slice("cassandra-1", "cassandra", [("cassandra-0", "10.5.0.1", True)])
    )
    sa_dir = control_plane.write_incluster_files(namespace, "seedsvc", tmp_path / "sa")
    env = pod_env(control_plane, namespace, sa_dir, POD_NAME="cassandra-2", POD_IP="10.5.0.3")
    served = start(env=env)
    served_processes.append(served)

    def readyz_detail() -> dict[str, Any] | None:
        status, _, body = served.get("/readyz")
        detail: dict[str, Any] = json.loads(body)
        return detail if status == 503 and detail.get("last_error_reason") == "forbidden" else None

    detail = eventually("/readyz to report the 403", readyz_detail)
    assert "403" in detail["last_error"] and "endpointslices" in detail["last_error"]
    status, headers, body = served.get("/seeds")
    assert status == 503 and body.strip() and "Retry-After" in headers
    assert (metric(served, "seedsvc_discovery_errors_total", source="kubernetes", reason="forbidden") or 0) >= 1
    assert any("403" in line for line in served.log)

    check = run("check", env=env)
    assert check.returncode == 1
    assert "FAIL" in check.stdout and "list" in check.stdout

    create(control_plane, namespace, k8s.role_for_endpointslices())
    create(control_plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    eventually("the list once RBAC allows it", lambda: served.get("/seeds")[2] == "10.5.0.1")
    assert served.get("/readyz")[0] == 200
    check = run("check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    seeds = run("seeds", env=env)
    assert seeds.returncode == 0 and seeds.stdout.strip() == "10.5.0.1"


def test_an_api_server_restart_keeps_seeds_answering_marked_stale(
    control_plane_factory: ControlPlaneFactory, served_processes: list[Served]
) -> None:
    plane = control_plane_factory(ControlPlaneOptions())
    create(plane, "default", k8s.endpoint_slice("db-1", "db", [("db-0", "10.6.0.1", True), ("db-1", "10.6.0.2", True)]))
    served = start(
        env={
            "KUBECONFIG": str(plane.kubeconfig),
            "POD_NAMESPACE": "default",
            "CASSANDRA_SERVICE": "db",
            "SEEDSVC_BACKOFF_MAX": "1",
            "SEEDSVC_CONNECT_TIMEOUT": "1",
        }
    )
    served_processes.append(served)

    def document() -> dict[str, Any]:
        status, _, body = served.get("/seeds?format=json")
        assert status == 200, body  # never a 503 once a list has been served
        result: dict[str, Any] = json.loads(body)
        return result

    try:
        eventually("the first list", lambda: served.get("/seeds")[0] == 200)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; sidecar log: {''.join(served.log[-20:])}") from None
    assert document()["seeds"] == ["10.6.0.1", "10.6.0.2"]
    plane.stop_apiserver()
    stale = eventually("stale while the API server is down", lambda: (d := document())["stale"] and d)
    assert stale["seeds"] == ["10.6.0.1", "10.6.0.2"]
    assert served.get("/seeds")[2] == "10.6.0.1,10.6.0.2"
    assert served.get("/seeds")[1]["X-Seedsvc-Stale"] == "true"
    assert metric(served, "seedsvc_stale") == 1
    assert served.get("/readyz")[0] == 200  # a stale list is still a list to serve

    plane.start_apiserver()
    eventually("fresh again after the restart", lambda: not document()["stale"])
    assert metric(served, "seedsvc_stale") == 0
    create(plane, "default", k8s.endpoint_slice("db-2", "db", [("db-2", "10.6.0.3", True)]))
    eventually("a change after the restart", lambda: "10.6.0.3" in document()["seeds"])

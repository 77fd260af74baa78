"""The real `seedsvc serve` / `check` / `seeds` processes against the real control plane, as in a pod."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.kubelet import Kubelet
from seedsvc_devcluster.sidecar_process import HttpAnswer
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
    """The value of the one series of ``name`` whose labels are exactly ``labels``, or None."""
    _, _, text = served.get("/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
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


class SeedsSampler:
    """Polls /seeds (text and JSON) in a thread until stopped; every answer must be a non-empty 200
    or a 503 with Retry-After and a reason: the design's "never an empty 200", sampled continuously."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.answers: list[tuple[int, str]] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in ("/seeds", "/seeds?format=json"):
                status, headers, body = self.served.get(path)
                self.answers.append((status, body))
                problem = answer_problem(status, headers, body)
                if problem:
                    self.problems.append(f"{path}: {problem}")
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)


def answer_problem(status: int, headers: Mapping[str, str], body: str) -> str | None:
    if status == 200:
        seeds = json.loads(body)["seeds"] if body.startswith("{") else [s for s in body.split(",") if s]
        return None if seeds else f"an empty 200: {body!r}"
    if status == 503:
        return None if body.strip() and "Retry-After" in headers else f"a 503 without reason or Retry-After: {body!r}"
    return f"unexpected {status}: {body!r}"


def test_a_served_list_then_every_pod_unready_or_gone_is_503_never_an_empty_200(
    control_plane: ControlPlane, kubelet: Kubelet, namespace: str, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=3))
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in kubelet.wait_for_pods(namespace, "app=cassandra", 3)}
    # Pod 5 is not the bootstrap pod and there is no CASSANDRA_SEEDS: with no eligible peer, rule 7
    # leaves it nothing to serve. The restart fallback is pushed out of the test's way.
    served = start(env={"KUBECONFIG": str(control_plane.kubeconfig), "POD_NAMESPACE": namespace,
                        "POD_NAME": "cassandra-5", "SEEDSVC_FLAP_GRACE": "1", "SEEDSVC_BACKOFF_MAX": "1",
                        "SEEDSVC_RESTART_FALLBACK_AFTER": "3600"})
    served_processes.append(served)
    every_pod = ",".join(pods[f"cassandra-{n}"] for n in range(3))
    eventually("the list of the three pods", lambda: served.get("/seeds")[2] == every_pod)
    generation = served.get("/seeds")[1]["X-Seedsvc-Generation"]
    woken: list[HttpAnswer] = []
    poller = threading.Thread(target=lambda: woken.append(
        served.get(f"/seeds?format=json&wait=300&generation={generation}", timeout=WAIT)))
    poller.start()
    sampler = SeedsSampler(served)
    try:
        for name in pods:
            kubelet.set_ready(namespace, name, False)
        eventually("a 503 once the grace period is over", lambda: served.get("/seeds")[0] == 503)
        status, headers, body = served.get("/seeds")
        assert status == 503 and "no eligible peer" in body and headers["Retry-After"] == "2"
        assert served.get("/readyz")[0] == 503
        assert metric(served, "seedsvc_seeds") == 0
        poller.join(WAIT)
        assert woken, "the long-poll was not answered by the change"
        assert answer_problem(*woken[0]) is None, woken[0]

        for name in pods:
            kubelet.set_ready(namespace, name, True)
        eventually("the list again", lambda: served.get("/seeds")[2] == every_pod)

        control_plane.api("PUT", f"/apis/apps/v1/namespaces/{namespace}/statefulsets/cassandra/scale", {
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "cassandra", "namespace": namespace}, "spec": {"replicas": 0},
        })
        eventually("a 503 once every pod is gone", lambda: served.get("/seeds")[0] == 503)
    finally:
        sampler.stop()
    assert not sampler.problems, sampler.problems[:5]
    assert {status for status, _ in sampler.answers} == {200, 503}

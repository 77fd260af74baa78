"""Relay mode on the real control plane: real ``seedsvc serve`` relays watch the API, real ``seedsvc
serve`` sidecars with ``--source relay`` (no service-account token, no RBAC) long-poll them over HTTP.

- Every pod of a StatefulSet is served exactly what select() on the whole Service gives its identity
  (what direct mode serves), before and after a change, the only-seed case (count 1) included.
- A relay killed mid-change: the sidecar keeps its last list (stale in /readyz and metrics, never an
  empty answer; a sidecar restarted meanwhile serves it from its state file); the change arrives once
  the relay is back. Several relay URLs: the change arrives through the next one.
- Bootstrap: only a reachable relay with a fresh view lets the bootstrap pod seed itself; a relay that is
  unreachable, or that has no view (its watch is forbidden), leaves every pod waiting.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Policy, select
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane
from seedsvc_devcluster.kubelet import Kubelet
from seedsvc_devcluster.ports import free_port
from tests.sidecar_fixtures import Served, run, start
from tests.test_kubernetes_source import create, endpoint_truth
from tests.test_sidecar_kubernetes import eventually, metric, pod_env

pytestmark = pytest.mark.controlplane


def start_relay(plane: ControlPlane, namespace: str, sa_dir: Path, *args: str, **extra: str) -> Served:
    """A relay: the normal serve with the Kubernetes source and no pod identity."""
    return start(*args, env=pod_env(plane, namespace, sa_dir, SEEDSVC_FLAP_GRACE="0", **extra))


def start_sidecar(pod: str, ip: str, urls: list[str], tmp_path: Path, **extra: str) -> Served:
    """A sidecar in relay mode: no API server settings, no token (its service-account dir is empty)."""
    env = {
        "SEEDSVC_SOURCE": "relay", "SEEDSVC_RELAY_URLS": ",".join(urls), "POD_NAME": pod, "POD_IP": ip,
        "POD_NAMESPACE": "unused", "SEEDSVC_BACKOFF_MAX": "1", "SEEDSVC_FLAP_GRACE": "0",
        "SEEDSVC_SERVICEACCOUNT_DIR": str(tmp_path / "no-token-here"),
        "SEEDSVC_STATE_FILE": str(tmp_path / f"{pod}.json"), **extra,
    }
    return start(env=env)


def relay_rbac(plane: ControlPlane, namespace: str, tmp_path: Path, *, allowed: bool = True) -> Path:
    create(plane, namespace, k8s.service_account("seedsvc-relay"))
    if allowed:
        create(plane, namespace, k8s.role_for_endpointslices("seedsvc-relay"))
        create(plane, namespace, k8s.role_binding("seedsvc-relay", "seedsvc-relay", "seedsvc-relay", namespace))
    return plane.write_incluster_files(namespace, "seedsvc-relay", tmp_path / "relay-sa")


def seeds(served: Served) -> tuple[int, str]:
    status, _, body = served.get("/seeds")
    return status, body.strip()


def readyz(served: Served) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(served.get("/readyz")[2])
    return document


def direct_answers(plane: ControlPlane, namespace: str, policy: Policy) -> dict[str, str]:
    """What select() on the whole Service (as the API has it now) serves each pod, by pod name."""
    truth = endpoint_truth(plane, namespace, "cassandra")
    records = [Endpoint(p.ip, p.name, p.zone, p.ready) for p in truth]
    return {p.name: ",".join(select(records, policy=policy, identity=Identity(p.name, p.ip), now=0).served)
            for p in truth}


@pytest.mark.parametrize("count", [1, 2])
def test_every_pod_is_served_what_watching_the_api_would_serve_it(
    control_plane: ControlPlane, kubelet: Kubelet, namespace: str, tmp_path: Path,
    served_processes: list[Served], count: int,
) -> None:
    create(control_plane, namespace, k8s.headless_service())
    create(control_plane, namespace, k8s.statefulset(replicas=4))
    pods = kubelet.wait_for_pods(namespace, "app=cassandra", 4)
    sa_dir = relay_rbac(control_plane, namespace, tmp_path)
    relays = [start_relay(control_plane, namespace, sa_dir, CASSANDRA_SERVICE_NUM_SEEDS=str(count))
              for _ in range(2)]
    served_processes.extend(relays)
    urls = [relay.sidecar.url for relay in relays]
    sidecars = {}
    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        sidecars[name] = start_sidecar(name, ip, urls, tmp_path, CASSANDRA_SERVICE_NUM_SEEDS=str(count))
        served_processes.append(sidecars[name])
    policy = Policy(count=count, flap_grace=0)

    def all_match() -> dict[str, str] | None:
        expected = direct_answers(control_plane, namespace, policy)
        got = {name: seeds(sidecar)[1] for name, sidecar in sidecars.items()}
        return got if got == expected and len(expected) == 4 else None

    first = eventually("every pod's list to equal select() for its identity", all_match)
    # The seeds (pod 0, and pod 1 with count 2) are never served themselves, and never an empty list.
    assert all(first.values())
    # Turn the first seed unready (which pod that is depends on how pods were spread over the zones),
    # so that the lists must change.
    truth = endpoint_truth(control_plane, namespace, "cassandra")
    records = [Endpoint(p.ip, p.name, p.zone, p.ready) for p in truth]
    seed = select(records, policy=policy, identity=Identity(), now=0).served[0]
    victim = next(p.name for p in truth if p.ip == seed)
    kubelet.set_ready(namespace, victim, False)
    # First the API must say so (the kubelet stand-in writes the status; on a loaded machine it lags),
    # then every relay-mode sidecar must serve what select() gives its identity on that truth.
    eventually(f"the API to show {victim} unready", lambda: any(
        p.name == victim and not p.ready for p in endpoint_truth(control_plane, namespace, "cassandra")),
        timeout=180)
    second = eventually(f"the lists after {victim} turned unready", lambda: (a := all_match()) and a != first and a)
    assert seed not in ",".join(second.values())
    for sidecar in sidecars.values():
        assert readyz(sidecar)["source"] == "relay" and not readyz(sidecar)["stale"]


def test_a_relay_killed_mid_change_keeps_the_lists_stale_and_the_change_still_arrives(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    slice_v1 = k8s.endpoint_slice("db-1", "db", [("db-0", "10.6.0.1", True), ("db-1", "10.6.0.2", True),
                                                 ("db-2", "10.6.0.3", True)])
    create(control_plane, namespace, slice_v1)
    sa_dir = relay_rbac(control_plane, namespace, tmp_path)
    port = free_port()
    relay_args = ("--port", str(port))
    first = start_relay(control_plane, namespace, sa_dir, *relay_args, CASSANDRA_SERVICE="db")
    served_processes.append(first)
    sidecar = start_sidecar("db-2", "10.6.0.3", [first.sidecar.url], tmp_path)
    served_processes.append(sidecar)
    eventually("the first list", lambda: seeds(sidecar) == (200, "10.6.0.1,10.6.0.2"))

    first.stop(signal.SIGKILL)
    eventually("stale in /readyz", lambda: readyz(sidecar)["stale"])
    # The change happens while no relay runs.
    control_plane.api("DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/db-1")
    create(control_plane, namespace, k8s.endpoint_slice("db-2", "db", [("db-1", "10.6.0.2", True),
                                                                       ("db-2", "10.6.0.3", True)]))
    for _ in range(20):  # the last list all along: never an empty answer, never a 503
        assert seeds(sidecar) == (200, "10.6.0.1,10.6.0.2")
    detail = readyz(sidecar)
    assert detail["servable"] and detail["stale"] and detail["last_error_reason"] in {"unreachable", "timeout"}
    assert (metric(sidecar, "seedsvc_discovery_errors_total", source="relay",
                   reason=detail["last_error_reason"]) or 0) >= 1
    assert metric(sidecar, "seedsvc_stale") == 1
    # A sidecar restarted meanwhile serves the last list from its state file, stale, at once.
    sidecar.stop()
    sidecar = start_sidecar("db-2", "10.6.0.3", [first.sidecar.url], tmp_path)
    served_processes.append(sidecar)
    assert seeds(sidecar) == (200, "10.6.0.1,10.6.0.2") and readyz(sidecar)["stale"]

    again = start_relay(control_plane, namespace, sa_dir, *relay_args, CASSANDRA_SERVICE="db")
    served_processes.append(again)
    eventually("the change through the restarted relay", lambda: seeds(sidecar) == (200, "10.6.0.2"))
    assert not readyz(sidecar)["stale"] and metric(sidecar, "seedsvc_stale") == 0


def test_several_relay_urls_fail_over_in_order(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.7.0.1", True)]))
    sa_dir = relay_rbac(control_plane, namespace, tmp_path)
    relays = [start_relay(control_plane, namespace, sa_dir, CASSANDRA_SERVICE="db") for _ in range(2)]
    served_processes.extend(relays)
    dead = f"http://127.0.0.1:{free_port()}"
    sidecar = start_sidecar("db-3", "10.7.0.4", [dead, relays[0].sidecar.url, relays[1].sidecar.url], tmp_path)
    served_processes.append(sidecar)
    eventually("the list past a dead first URL", lambda: seeds(sidecar) == (200, "10.7.0.1"))
    # seedsvc check asks each relay once: the dead one fails the check, naming it.
    env = {"SEEDSVC_SOURCE": "relay", "POD_IP": "10.7.0.4",
           "SEEDSVC_RELAY_URLS": ",".join([dead, relays[0].sidecar.url]), "SEEDSVC_CONNECT_TIMEOUT": "1"}
    check = run("check", env=env)
    assert check.returncode != 0 and dead in check.stdout, check.stdout + check.stderr
    assert f"relay {relays[0].sidecar.url}" in check.stdout
    relays[0].stop(signal.SIGKILL)
    create(control_plane, namespace, k8s.endpoint_slice("db-2", "db", [("db-1", "10.7.0.2", True)]))
    eventually("the change through the last relay", lambda: seeds(sidecar) == (200, "10.7.0.1,10.7.0.2"))
    assert not readyz(sidecar)["stale"]


def test_only_a_fresh_relay_view_lets_the_bootstrap_pod_seed_itself(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served]
) -> None:
    # Pods exist but none is ready: a new cluster, or a whole-cluster restart.
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.8.0.1", False),
                                                                       ("db-1", "10.8.0.2", False)]))
    unreachable = f"http://127.0.0.1:{free_port()}"
    cut_off = start_sidecar("db-0", "10.8.0.1", [unreachable], tmp_path / "a")
    served_processes.append(cut_off)
    forbidden_sa = relay_rbac(control_plane, namespace, tmp_path, allowed=False)
    blind = start_relay(control_plane, namespace, forbidden_sa, CASSANDRA_SERVICE="db")
    served_processes.append(blind)
    no_view = start_sidecar("db-0", "10.8.0.1", [blind.sidecar.url], tmp_path / "b")
    served_processes.append(no_view)
    eventually("the relay's 403", lambda: readyz(blind)["last_error_reason"] == "forbidden")
    eventually("both bootstrap pods to report the relay failing",
               lambda: readyz(cut_off)["last_error"] and readyz(no_view)["last_error"])
    for sidecar in (cut_off, no_view):
        assert seeds(sidecar)[0] == 503  # waits: it never serves itself on an unanswered question
        assert readyz(sidecar)["mode"] == "unavailable"

    create(control_plane, namespace, k8s.role_for_endpointslices("seedsvc-relay"))
    create(control_plane, namespace, k8s.role_binding("seedsvc-relay", "seedsvc-relay", "seedsvc-relay", namespace))
    eventually("the bootstrap pod seeding itself on the fresh view", lambda: seeds(no_view) == (200, "10.8.0.1"))
    assert readyz(no_view)["mode"] == "bootstrap"
    other = start_sidecar("db-1", "10.8.0.2", [blind.sidecar.url], tmp_path / "c")
    served_processes.append(other)
    eventually("pod 1 to have its answer", lambda: readyz(other)["last_success"])
    assert seeds(other)[0] == 503  # only ordinal 0 may seed itself
    assert seeds(cut_off)[0] == 503

"""Several datacenters with real `seedsvc serve` processes on real control planes (docs/design.md section 8).

Two DCs in two namespaces of one control plane, and two DCs on two separate control planes standing
for two Kubernetes clusters. Each DC's sidecars use their own namespace's service account with the
same least-privilege Role as one DC (endpointslices get/list/watch in their own namespace): peers are
reached over HTTP only. Pods are EndpointSlice entries written directly, so readiness changes on
demand; addresses are loopback data (127.0.7x.y), never contacted. Waits are generous bounds.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seedsvc.api import current_seeds_sync
from seedsvc.seedlist import SeedList
from seedsvc.settings import load
from seedsvc.state import StateFile
from seedsvc_devcluster import demo_multidc
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions, wait_until
from seedsvc_devcluster.sidecar_process import run as run_cli
from tests.cluster_fixtures import ControlPlaneFactory
from tests.sidecar_fixtures import Served, start
from tests.test_kubernetes_source import create
from tests.test_sidecar_kubernetes import eventually, metric, pod_env

pytestmark = pytest.mark.controlplane

SLICE = "cassandra-pods"


def address(dc: int, ordinal: int) -> str:
    return f"127.0.{70 + dc}.{ordinal + 1}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Datacenter:
    """One DC: its namespace on a control plane, its service account, its sidecars' port."""

    number: int
    plane: ControlPlane
    namespace: str
    sa_dir: Path
    port: int

    @property
    def name(self) -> str:
        return f"dc{self.number}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_pods(self, ready: list[int], unready: list[int] = (), *, first: bool = False) -> None:  # type: ignore[assignment]
        pods = [(f"cassandra-{i}", address(self.number, i), True) for i in ready]
        pods += [(f"cassandra-{i}", address(self.number, i), False) for i in unready]
        slice_ = k8s.endpoint_slice(SLICE, "cassandra", sorted(pods))
        if first:
            create(self.plane, self.namespace, slice_)
        else:
            self.plane.api("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices/{SLICE}",
                           slice_)

    def env(self, pod: int, peers: list[Datacenter | tuple[str, str]] | None, **extra: str) -> dict[str, str]:
        """The pod's environment; ``peers`` None leaves SEEDSVC_DATACENTER and SEEDSVC_PEERS to flags."""
        federation = {} if peers is None else {"SEEDSVC_DATACENTER": self.name, "SEEDSVC_PEERS": peer_list(peers)}
        return pod_env(self.plane, self.namespace, self.sa_dir, POD_NAME=f"cassandra-{pod}",
                       POD_IP=address(self.number, pod), SEEDSVC_BOOTSTRAP_DATACENTER="dc1",
                       SEEDSVC_CONNECT_TIMEOUT="1", SEEDSVC_REQUEST_TIMEOUT="2", **federation, **extra)

    def sidecar(self, pod: int, peers: list[Datacenter | tuple[str, str]], *, state_file: Path | None = None,
                **extra: str) -> Served:
        env = self.env(pod, peers, **({"SEEDSVC_STATE_FILE": str(state_file)} if state_file else {}), **extra)
        return start("--port", str(self.port), env=env)


def peer_list(peers: list[Datacenter | tuple[str, str]]) -> str:
    return ",".join(f"{p.name}={p.url}" if isinstance(p, Datacenter) else f"{p[0]}={p[1]}" for p in peers)


def datacenter(number: int, plane: ControlPlane, namespace: str, tmp_path: Path) -> Datacenter:
    """The DC's RBAC exactly as deploy/base: a service account allowed its own namespace's slices."""
    create(plane, namespace, k8s.service_account("seedsvc"))
    create(plane, namespace, k8s.role_for_endpointslices())
    create(plane, namespace, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", namespace))
    sa_dir = plane.write_incluster_files(namespace, "seedsvc", tmp_path / f"sa-dc{number}")
    return Datacenter(number, plane, namespace, sa_dir, free_port())


@pytest.fixture
def second_namespace(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    name = f"{namespace[:55]}-dc2"
    control_plane.api("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_until(lambda: control_plane.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"), timeout_s=30,
               what=f"default ServiceAccount in {name}")
    try:
        yield name
    finally:
        control_plane.api("DELETE", f"/api/v1/namespaces/{name}")


def seeds(served: Served) -> str | None:
    status, _, body = served.get("/seeds")
    return body.strip() if status == 200 else None


def failing_peers(served: Served) -> dict[str, str]:
    """/readyz detail; absent until the first local view (the DC's own state comes first)."""
    peers: dict[str, str] = json.loads(served.get("/readyz")[2]).get("failing_peers", {})
    return peers


def document(served: Served) -> dict[str, Any]:
    status, _, body = served.get("/seeds?format=json")
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def test_two_namespaces_new_dc_waits_joins_survives_its_peer_going_down_and_reforms_alone(
    control_plane: ControlPlane, namespace: str, second_namespace: str, tmp_path: Path,
    served_processes: list[Served],
) -> None:
    dc1 = datacenter(1, control_plane, namespace, tmp_path)
    dc2 = datacenter(2, control_plane, second_namespace, tmp_path)
    state_file = tmp_path / "dc2-pod0-state.json"

    # A new DC whose peer is unreachable from the start: its pods exist, none ready. Pod 0 may not
    # seed itself (dc1 is the bootstrap DC) and, never having run, gets no restart fallback either.
    dc2.set_pods([], [0, 1], first=True)
    dc2_pod0 = dc2.sidecar(0, [dc1], state_file=state_file, SEEDSVC_RESTART_FALLBACK_AFTER="1")
    served_processes.append(dc2_pod0)
    eventually("dc2 to report dc1 failing", lambda: "dc1" in failing_peers(dc2_pod0))
    time.sleep(2.5)  # past the 1 s fallback: still nothing to serve, so no island can form
    status, headers, body = dc2_pod0.get("/seeds")
    assert status == 503 and "Retry-After" in headers and "no peer datacenter seed known" in body, body

    # The peer DC appears: the new DC's pod 0 joins through dc1's seeds, never served itself.
    dc1.set_pods([0, 1, 2], first=True)
    dc1_pod1 = dc1.sidecar(1, [dc2])
    served_processes.append(dc1_pod1)
    eventually("dc2 pod 0 to join through dc1", lambda: seeds(dc2_pod0) == f"{address(1, 0)},{address(1, 1)}")
    assert document(dc2_pod0)["mode"] == "peers"
    assert address(2, 0) not in (seeds(dc2_pod0) or "")
    # dc1 pod 1: its own DC's seeds less itself, then dc2's own seed set (its unready pods under
    # rule 8: dc1's nodes may gossip towards them; dc2's pods are never served them).
    eventually("dc1 pod 1's list", lambda: (seeds(dc1_pod1) or "").startswith(f"{address(1, 0)},{address(1, 2)}"))

    # dc2's pods turn ready: pod 0 gets its own DC's seeds (less itself), then dc1's.
    dc2.set_pods([0, 1])
    expected = f"{address(2, 1)},{address(1, 0)},{address(1, 1)}"
    eventually("dc2's local seeds", lambda: seeds(dc2_pod0) == expected)
    eventually("dc1 to hold dc2's seeds", lambda: seeds(dc1_pod1) == ",".join(
        [address(1, 0), address(1, 2), address(2, 0), address(2, 1)]))

    # The peer DC goes down: its last seeds stay, marked stale in JSON, metrics and /readyz.
    dc1_pod1.stop()
    eventually("dc1 stale in dc2's JSON", lambda: document(dc2_pod0)["datacenters"]["dc1"]["stale"])
    detail = document(dc2_pod0)
    assert detail["seeds"] == expected.split(",") and detail["datacenters"]["dc1"]["seeds"][:2] == [
        address(1, 0), address(1, 1)]
    assert detail["stale"] is False  # the local part is fresh
    status, _, readyz = dc2_pod0.get("/readyz")
    assert status == 200 and "dc1" in json.loads(readyz)["failing_peers"]
    assert metric(dc2_pod0, "seedsvc_peer_stale", datacenter="dc1") == 1
    assert (metric(dc2_pod0, "seedsvc_peer_errors_total", datacenter="dc1", reason="unreachable") or 0) >= 1
    # Local serving never waits on the failing peer.
    dc2.set_pods([0, 1, 2])
    eventually("a local change while the peer is down", lambda: seeds(dc2_pod0) == ",".join(
        [address(2, 1), address(2, 2), address(1, 0), address(1, 1)]))

    # Whole-DC restart while the peer DC is still down: every dc2 pod unready, the sidecar restarted.
    # It has run before (its state file), so after the fallback pod 0 is served itself (regional
    # recovery), then its unready peers (rule 8).
    dc2_pod0.stop()
    dc2.set_pods([], [0, 1, 2])
    restarted = dc2.sidecar(0, [dc1], state_file=state_file, SEEDSVC_RESTART_FALLBACK_AFTER="1")
    served_processes.append(restarted)
    eventually("the re-formed list", lambda: seeds(restarted) == ",".join(address(2, i) for i in range(3)))
    assert document(restarted)["mode"] == "bootstrap"


RECOVERY_AFTER = 15.0
"""The restart-fallback time of the regional-recovery test: long enough that the 503 before it is
seen even when the sidecar starts slowly on a loaded machine."""


def test_pod_0_that_has_run_before_seeds_itself_after_the_fallback_time_while_its_peer_is_down(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, served_processes: list[Served],
) -> None:
    """Regional recovery under OrderedReady: dc2's pod 0 exists alone (pod 1 is not created before pod 0
    is ready), dc1's seedsvc is unreachable and its seeds unknown (the sidecar restarted too)."""
    dc2 = datacenter(2, control_plane, namespace, tmp_path)
    dc2.set_pods([], [0], first=True)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        dc1 = ("dc1", f"http://127.0.0.1:{closed.getsockname()[1]}")
        state_file = tmp_path / "dc2-pod0-state.json"
        StateFile(state_file).save(SeedList(seeds=(address(2, 1), address(1, 0)), generation=4))
        began = time.monotonic()
        has_run = dc2.sidecar(0, [dc1], state_file=state_file, SEEDSVC_RESTART_FALLBACK_AFTER=f"{RECOVERY_AFTER:g}")
        served_processes.append(has_run)
        # The same pod without the evidence (a new DC, or a lost data volume), on its own port.
        dc2.port = free_port()
        never_ran = dc2.sidecar(0, [dc1], state_file=tmp_path / "none" / "state.json",
                                SEEDSVC_RESTART_FALLBACK_AFTER=f"{RECOVERY_AFTER:g}")
        served_processes.append(never_ran)

        for sidecar in (has_run, never_ran):
            eventually("dc1 failing", lambda s=sidecar: "dc1" in failing_peers(s))  # type: ignore[misc]
            eventually("503 once the local view is in", lambda s=sidecar: s.get("/seeds")[0] == 503)  # type: ignore[misc]
        assert "no peer datacenter seed known" in has_run.get("/seeds")[2]

        eventually("pod 0 to seed itself", lambda: seeds(has_run) == address(2, 0), timeout=RECOVERY_AFTER + 60)
        # A lower bound only: the wait starts after the process does, so it is never early.
        assert time.monotonic() - began >= RECOVERY_AFTER
        answer = document(has_run)
        assert answer["mode"] == "bootstrap" and "has run before" in answer["reason"], answer
        assert any("seeding itself" in line for line in has_run.log)

        status, _, body = never_ran.get("/seeds")
        assert status == 503 and "no peer datacenter seed known" in body, body


def test_two_control_planes_peer_over_http_and_a_hanging_peer_is_bounded(
    control_plane: ControlPlane, control_plane_factory: ControlPlaneFactory, namespace: str, tmp_path: Path,
    served_processes: list[Served],
) -> None:
    other = control_plane_factory(ControlPlaneOptions())
    dc1 = datacenter(1, control_plane, namespace, tmp_path)
    dc2 = datacenter(2, other, "default", tmp_path)
    dc1.set_pods([0, 1, 2], first=True)
    dc2.set_pods([0, 1, 2], first=True)
    # dc3's URL accepts connections and never answers (a listening socket nobody accepts from).
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        dc3 = ("dc3", f"http://127.0.0.1:{hanging.getsockname()[1]}")
        dc1_pod0 = dc1.sidecar(0, [dc2, dc3])
        served_processes.append(dc1_pod0)
        dc2_pod2 = dc2.sidecar(2, [dc1, dc3])
        served_processes.append(dc2_pod2)
        eventually("dc1 pod 0's list", lambda: seeds(dc1_pod0) == ",".join(
            [address(1, 1), address(1, 2), address(2, 0), address(2, 1)]))
        eventually("dc2 pod 2's list", lambda: seeds(dc2_pod2) == ",".join(
            [address(2, 0), address(2, 1), address(1, 0), address(1, 1)]))
        # The hanging peer is bounded by the request timeout and reported; the list never waited on it.
        eventually("dc3 timing out", lambda: "timeout" in failing_peers(dc1_pod0).get("dc3", ""))
        assert (metric(dc1_pod0, "seedsvc_peer_errors_total", datacenter="dc3", reason="timeout") or 0) >= 1

        # dc1's seed 0 moves (a new IP) in cluster A: dc2 in cluster B learns it by long-poll.
        moved = k8s.endpoint_slice(SLICE, "cassandra", [("cassandra-0", "127.0.71.9", True),
                                                        ("cassandra-1", address(1, 1), True),
                                                        ("cassandra-2", address(1, 2), True)])
        control_plane.api("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{SLICE}", moved)
        eventually("dc2 to hold dc1's new seed", lambda: seeds(dc2_pod2) == ",".join(
            [address(2, 0), address(2, 1), "127.0.71.9", address(1, 1)]))


def test_one_shot_seeds_compose_peers_as_the_sidecar_does_within_bounds(
    control_plane: ControlPlane, namespace: str, second_namespace: str, tmp_path: Path,
    served_processes: list[Served],
) -> None:
    """``seedsvc seeds`` and ``current_seeds_sync()`` with a datacenter: one bounded fetch of each peer
    (a real dc1 sidecar, a hanging dc3), composed exactly as the running dc2 sidecar composes."""
    dc1 = datacenter(1, control_plane, namespace, tmp_path)
    dc2 = datacenter(2, control_plane, second_namespace, tmp_path)
    dc1.set_pods([0, 1, 2], first=True)
    dc2.set_pods([0, 1], [2], first=True)
    dc1_pod0 = dc1.sidecar(0, [dc2])
    served_processes.append(dc1_pod0)
    expected = [address(2, 0), address(1, 0), address(1, 1)]
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(8)
        peers: list[Datacenter | tuple[str, str]] = [dc1, ("dc3", f"http://127.0.0.1:{hanging.getsockname()[1]}")]
        dc2_pod1 = dc2.sidecar(1, peers)
        served_processes.append(dc2_pod1)
        eventually("dc2 pod 1's list", lambda: seeds(dc2_pod1) == ",".join(expected))

        began = time.monotonic()
        cli = run_cli("seeds", "--json", "--timeout", "30", "--datacenter", "dc2", "--peers", peer_list(peers),
                      env=dc2.env(1, None), timeout=90)
        took = time.monotonic() - began
        assert cli.returncode == 0, cli.stderr
        answer = json.loads(cli.stdout)
        assert answer["seeds"] == expected == document(dc2_pod1)["seeds"]
        assert answer["datacenter"] == "dc2" and answer["datacenters"]["dc1"]["stale"] is False
        dc3 = answer["datacenters"]["dc3"]
        assert dc3["stale"] is True and dc3["seeds"] == [] and "timeout" in dc3["reason"], dc3
        # The hanging peer costs its request timeout (2 s here), not the command's 30 s bound.
        assert took < 30, took

        found = current_seeds_sync(load({}, dc2.env(1, peers)), timeout=30)
        assert list(found.seeds) == expected and found.datacenter == "dc2"
        assert {d.name: d.stale for d in found.datacenters} == {"dc1": False, "dc2": False, "dc3": True}

    # A new DC whose only peer is unreachable: no list, never its own pods (exit 1, the reason said).
    dc1_pod0.stop()
    dc2.set_pods([], [0, 1, 2])
    cli = run_cli("seeds", "--timeout", "20", env=dc2.env(0, [dc1]), timeout=60)
    assert cli.returncode == 1 and cli.stdout == "", (cli.stdout, cli.stderr)
    assert "no peer datacenter seed known" in cli.stderr, cli.stderr


def test_the_two_dc_demo_light_path_runs_and_shows_a_stale_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo DEMO_ARGS="--multi-dc --light --no-hold"` on its own control plane, tests' addresses."""
    lines = demo_multidc.main(tmp_path, cassandra=False, hold=None,
                              addresses=demo_multidc.Addresses(first_pod_ip="127.0.76.1", service_net="127.0.77"))
    out = capsys.readouterr().out
    for step in ("dc1 alone", "dc2 created while dc1 runs", "dc1's seedsvc unreachable", "dc1 reachable again"):
        assert f"== {step}" in out, out
    unreachable = out.split("== dc1's seedsvc unreachable")[1].split("== ")[0]
    assert '"dc1": {"seeds": ["127.0.76.1", ' in unreachable and '"stale": true' in unreachable, unreachable
    for dc, pod_lines in lines.items():
        assert len(pod_lines) == 3 and all("/seeds -> 200 " in line for line in pod_lines), (dc, pod_lines)

"""Whole system (issue #5): the StatefulSet overlay from deploy/, applied to a real control plane, with a
real seedsvc sidecar and a real Cassandra 5.0 node for every pod.

- ``deploy/overlays/statefulset`` is rendered with the harness-built ``kubectl kustomize`` (retargeted
  to a test namespace) and applied with ``kubectl apply``: ServiceAccount, Role, RoleBinding, headless
  Service, PodDisruptionBudget and the StatefulSet (3 replicas, OrderedReady).
- A kubelet stand-in of its own (``KubeletOptions(probe=True)``, pod IPs from 127.0.30.1) binds the
  pods, gives them loopback IPs that are never reused, and sets readiness from the pod's real
  readinessProbe: a TCP connect to the Cassandra container's ``cql`` port (9042) on the pod IP. So a
  pod is Ready exactly when its Cassandra serves CQL, and the EndpointSlice controller publishes it.
- The stand-in runs no processes; :class:`seedsvc_devcluster.pods.PodReconciler` plays the container
  runtime. For every live pod it starts the sidecar as the manifest configures it (its environment,
  ``POD_NAME``/``POD_IP``/``POD_NAMESPACE`` from the pod, a token of the pod's ServiceAccount from the
  TokenRequest API), waits for its ``/readyz`` (the native sidecar's startupProbe), then starts a
  Cassandra node on the pod IP with the shim pointing at that sidecar and the manifest's cluster
  name, DC, rack and token count. **Pod deleted (deletionTimestamp set, or gone, or replaced by a new
  uid) = Cassandra stopped** (SIGTERM: Cassandra drains; then the sidecar). The data directory is
  per pod *name* (``data-cassandra-N``, the PersistentVolumeClaim), so a recreated pod restarts on the
  same data with its new IP.

Only the tests' own control plane is used (``control_plane_factory``), so the session's kubelet
stand-in, which other modules start on the shared control plane, never competes for these pods.

Deliberate differences from a real cluster: heaps of 256-512 MiB instead of the manifest's 4G; the
sidecar listens on ``<pod IP>:<free port>`` instead of ``0.0.0.0:8080`` (several "pods" share one
network namespace), and the shim's ``url`` is that address instead of ``127.0.0.1:8080``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import deploy_support as d
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.kubelet import pod_is_ready
from seedsvc_devcluster.system import NODE_TIMEOUT_S, System, SystemUnavailable, running_system
from tests.cassandra_checks import driver, poll

pytestmark = [pytest.mark.cassandra, pytest.mark.controlplane]


def _pod_names(n: int) -> list[str]:
    return [f"cassandra-{i}" for i in range(n)]


# --------------------------------------------------------------------------------------------------
# Fixture
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def system(
    control_plane_factory: Callable[[ControlPlaneOptions], ControlPlane], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    try:
        with running_system(control_plane_factory, tmp_path_factory.mktemp("whole-system")) as running:
            try:
                yield running
            finally:
                print(f"\nwhole-system reconciler events: {running.runner.log()}")
    except SystemUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


# --------------------------------------------------------------------------------------------------
# Checks of the ring from every node's point of view
# --------------------------------------------------------------------------------------------------


def _status_lines(node: harness.CassandraNode) -> dict[str, str]:
    """``nodetool status`` of one node: address -> two-letter state (UN, DN, UJ, ...)."""
    out = node.nodetool("status")
    return {m.group(2): m.group(1) for m in re.finditer(r"^([UD][NLJM])\s+(\d+\.\d+\.\d+\.\d+)", out, re.MULTILINE)}


def _every_node_sees_up_normal(system: System, ips: set[str]) -> bool:
    names = list(system.runner.running)  # copied: the reconciler thread changes it
    return all(_status_lines(system.node(name)) == dict.fromkeys(ips, "UN") for name in names)


@dataclass
class RingView:
    cluster_names: set[str]
    host_ids: dict[str, Any]  # address -> host id, as each node reports itself
    peers: dict[str, dict[str, Any]]  # address -> {peer address: host id} from its system.peers
    driver_hosts: dict[str, bool]  # address -> is_up, from the driver's metadata


def _ring_view(ips: set[str]) -> RingView:
    cluster = driver(sorted(ips))
    try:
        session = cluster.connect()

        def pooled() -> dict[str, Any] | None:
            hosts = {str(h.address): h for h, p in session.get_pool_state().items() if p.get("open_count", 0) > 0}
            return hosts if ips <= set(hosts) else None

        hosts = poll(pooled, 90, f"driver pools to {sorted(ips)}", interval=0.2)
        poll(lambda: all(h.is_up for h in cluster.metadata.all_hosts()), 60, "every driver host up", interval=0.2)
        view = RingView(set(), {}, {}, {str(h.address): bool(h.is_up) for h in cluster.metadata.all_hosts()})
        for ip in sorted(ips):
            local = session.execute("SELECT cluster_name, host_id FROM system.local", host=hosts[ip]).one()
            view.cluster_names.add(local.cluster_name)
            view.host_ids[ip] = local.host_id
            rows = session.execute("SELECT peer, host_id FROM system.peers", host=hosts[ip])
            view.peers[ip] = {str(r.peer): r.host_id for r in rows}
        return view
    finally:
        cluster.shutdown()


def _assert_one_ring(system: System, pods: dict[str, d.Obj]) -> RingView:
    ips = {p["status"]["podIP"] for p in pods.values()}
    poll(lambda: _every_node_sees_up_normal(system, ips), 120, f"every node to see {sorted(ips)} all UN", 1.0)

    def settled_view() -> RingView | None:
        # system.peers is written as gossip reaches each node, a moment after nodetool shows UN.
        view = _ring_view(ips)
        settled = all(set(view.peers.get(ip, {})) == ips - {ip} for ip in ips)
        return view if settled else None

    view: RingView = poll(settled_view, 60, f"every node's system.peers to list the other {len(ips) - 1}", 2.0)
    assert view.cluster_names == {"cassandra"}, view.cluster_names
    assert len(set(view.host_ids.values())) == len(ips), view.host_ids
    for ip in ips:  # every node sees exactly the others, with the host ids they report themselves
        assert view.peers[ip] == {peer: view.host_ids[peer] for peer in ips - {ip}}, (ip, view.peers[ip])
    assert view.driver_hosts == dict.fromkeys(ips, True), view.driver_hosts
    return view


# --------------------------------------------------------------------------------------------------
# Tests (in order, on one system)
# --------------------------------------------------------------------------------------------------


def test_three_node_ring_forms_from_the_statefulset(system: System) -> None:
    pods = system.wait_for_ring(3)
    assert sorted(pods) == _pod_names(3)
    ips = {name: p["status"]["podIP"] for name, p in pods.items()}
    # cassandra-0 seeded itself (bootstrap rule); each later pod was served the ready pods before it.
    for i, name in enumerate(_pod_names(3)):
        node = system.node(name)
        served = ", ".join(ips[f"cassandra-{j}"] for j in range(i)) if i else ips["cassandra-0"]
        assert node.grep_log(rf"Using seeds \[{re.escape(served)}\] from the sidecar"), node.diagnostics()
        assert bool(node.grep_log(r"JOINING: Starting to bootstrap")) == (i > 0), name
        rss = node.rss_bytes() / 2**20
        print(f"{name} {ips[name]}: CQL {node.startup_seconds:.1f}s after start, RSS {rss:.0f} MiB")
    _assert_one_ring(system, pods)
    assert system.runner.errors == [] and system.kubelet.errors == []


def test_scaling_to_four_bootstraps_from_the_served_seeds(system: System) -> None:
    before = system.wait_for_ring(3, timeout=60)
    system.kubectl_run("scale", "statefulset/cassandra", "--replicas=4")
    pods = system.wait_for_ring(4)
    seeds = ", ".join(before[f"cassandra-{i}"]["status"]["podIP"] for i in range(3))
    node = system.node("cassandra-3")
    assert node.grep_log(rf"Using seeds \[{re.escape(seeds)}\] from the sidecar"), node.diagnostics()
    assert node.grep_log(r"JOINING: Starting to bootstrap"), node.diagnostics()
    print(
        f"cassandra-3 {node.address}: CQL {node.startup_seconds:.1f}s after start, "
        f"RSS {node.rss_bytes() / 2**20:.0f} MiB"
    )
    _assert_one_ring(system, pods)
    assert system.runner.errors == []


def test_deleting_a_seed_pod_keeps_one_cluster(system: System) -> None:
    pods = system.wait_for_ring(4, timeout=60)
    view_before = _assert_one_ring(system, pods)
    old = pods["cassandra-0"]
    old_ip, old_uid = old["status"]["podIP"], old["metadata"]["uid"]
    others = {name: system.node(name) for name in _pod_names(4)[1:]}
    others_pids = {name: node.pid for name, node in others.items()}
    old_node = system.node("cassandra-0")
    host_id = view_before.host_ids[old_ip]

    system.kubelet.delete_pod(system.namespace, "cassandra-0")
    system.kubelet.wait_for_pod_gone(system.namespace, "cassandra-0", uid=old_uid, timeout=60)
    poll(lambda: not old_node.is_running(), 60, "the deleted pod's Cassandra to stop", interval=0.2)

    def recreated() -> d.Obj | None:
        pod = system.pods().get("cassandra-0")
        if pod is None or pod["metadata"]["uid"] == old_uid or not pod_is_ready(pod):
            return None
        return pod

    new = poll(recreated, NODE_TIMEOUT_S, "cassandra-0 recreated and Ready", 1.0)
    new_ip = new["status"]["podIP"]
    assert new_ip != old_ip, "the stand-in never reuses an IP"
    proc = system.runner.wait_for_node("cassandra-0", uid=new["metadata"]["uid"], timeout=60)
    node = proc.node
    assert node is not None and node.data_dir == old_node.data_dir and node.address == new_ip
    # Same data: no bootstrap, no self-seeding (its sidecar served the three others), the same host id.
    assert not node.grep_log(r"JOINING: Starting to bootstrap", since_start=True), node.diagnostics()
    served = ", ".join(pods[f"cassandra-{i}"]["status"]["podIP"] for i in (1, 2, 3))
    assert node.grep_log(rf"Using seeds \[{re.escape(served)}\] from the sidecar", since_start=True), node.diagnostics()
    print(f"cassandra-0 {old_ip} -> {new_ip}: CQL {node.startup_seconds:.1f}s after start on the old data")

    # The others kept running throughout.
    assert {name: n.pid for name, n in others.items()} == others_pids
    assert all(n.is_running() for n in others.values())
    pods = system.wait_for_ring(4, timeout=60)
    view = _assert_one_ring(system, pods)
    assert view.host_ids[new_ip] == host_id
    assert set(view.host_ids.values()) == set(view_before.host_ids.values()), "one set of host ids"
    for ip, peers in view.peers.items():
        assert old_ip not in peers, f"{ip} still lists the old address {old_ip}"
    assert system.runner.errors == [] and system.kubelet.errors == []

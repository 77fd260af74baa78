"""Issue 10, cases 1, 3, 4, 5 and 6 with real Cassandra 5.0, folded into one ring so CI boots it once.

Two DCs of two nodes each, in two namespaces of the session's control plane: ``dc1`` on 127.0.71.1-2,
``dc2`` on 127.0.72.1-2, GossipingPropertyFileSnitch with each node's DC and rack. Every node has its
own real ``seedsvc serve`` (Kubernetes source, in-cluster token of its namespace's service account,
SEEDSVC_DATACENTER, the other DC as peer) and loads the Java shim pointed at it. The peer URL is one
sidecar of the other DC on a fixed port, standing for the Service a DC exposes to its peers. Each
namespace's EndpointSlice follows its nodes' CQL ports (tests.test_cassandra_e2e.ReadinessKeeper).

Shown: dc1 forms (its pod 0 is the bootstrap DC's bootstrap pod). dc2 is then created while dc1's
seedsvc is unreachable (case 5): its sidecars answer 503 and its first node waits in the shim, no
CQL port, no cluster of its own; once dc1's seedsvc answers, dc2's sidecars serve dc1's seeds and,
watched all along, never a node's own address; its nodes bootstrap and ``nodetool status`` on a dc1
node shows both DCs, both nodes of each Up/Normal, in one ring (case 1). Then a dc1 seed leaves dc1's
seed set (its node stops serving CQL) and a running dc2 node's Gossiper drops it within seconds,
through dc2's sidecar long-polling dc1 and the shim's live reload; then takes it back (case 6).
Then dc1's seedsvc becomes wholly unreachable: dc2's lists keep dc1's last seeds, marked stale (case
3); dc1's nodes stop too and a dc2 node restarted meanwhile rejoins. Last, the whole of dc2 (nodes and
sidecars) restarts while dc1 is down (case 4), in StatefulSet OrderedReady order: pod 0 alone, its
sidecar holding its state file serves pod 0 itself after the fallback time (regional recovery), its
node serves CQL, then pod 1 is created and served pod 0; dc2 re-forms on its own, and once dc1 is
back the ring holds all four nodes again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, wait_until
from seedsvc_devcluster.pods import incluster_sidecar_env
from seedsvc_devcluster.sidecar_process import HttpAnswer
from seedsvc_devcluster.sidecar_process import SidecarProcess as Sidecar
from tests import test_cassandra_e2e as e2e
from tests.cassandra_checks import poll

pytestmark = [pytest.mark.cassandra, pytest.mark.controlplane]

SIDECAR_PORT = 18590  # fixed, on each pod's own loopback address: the peers' URLs must be known up front
CLUSTER_NAME = "seedsvc-multidc"
START_TIMEOUT_S = 300.0
RESTART_FALLBACK_AFTER_S = 10


def address(dc: int, ordinal: int) -> str:
    return f"127.0.{70 + dc}.{ordinal + 1}"


@dataclass
class OwnAddressWatch:
    """Polls every dc2 sidecar's /seeds while dc2 forms; records any answer holding the pod's own address."""

    sidecars: dict[str, Sidecar]
    answers: list[tuple[str, int, str]] = field(default_factory=list)
    violations: list[tuple[str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> OwnAddressWatch:
        self._thread = threading.Thread(target=self._loop, name="own-address-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for own, sidecar in self.sidecars.items():
                try:
                    answer = sidecar.seeds()
                except Exception:  # a sidecar being stopped at the end; the next round decides
                    continue
                self.answers.append((own, answer.status, answer.body))
                if answer.status == 200 and own in answer.body.split(","):
                    self.violations.append((own, answer.body))
            self._stop.wait(0.2)


def _namespace(plane: ControlPlane, dc: str) -> str:
    name = f"multidc-{dc}-{uuid.uuid4().hex[:6]}"
    plane.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_until(lambda: plane.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"), timeout_s=30,
               what=f"default ServiceAccount in {name}")
    service = k8s.headless_service(e2e.SERVICE)
    del service["spec"]["selector"]  # our keeper owns the slice, not the EndpointSlice controller
    for obj in (k8s.service_account(e2e.SERVICE_ACCOUNT), k8s.role_for_endpointslices("cassandra-seedsvc"),
                k8s.role_binding("cassandra-seedsvc", "cassandra-seedsvc", e2e.SERVICE_ACCOUNT, name), service):
        e2e._create(plane, name, obj)
    return name


def _sidecar(plane: ControlPlane, namespace: str, dc: int, ordinal: int, workdir: Path) -> Sidecar:
    peer = 3 - dc
    pod, ip = f"cassandra-{ordinal}", address(dc, ordinal)
    env = incluster_sidecar_env(
        plane, namespace=namespace, service_account=e2e.SERVICE_ACCOUNT, pod_name=pod, pod_ip=ip,
        sa_dir=workdir / "serviceaccount" / f"dc{dc}-{pod}",
        extra={
            "SEEDSVC_API": "endpointslices",
            "CASSANDRA_SERVICE": e2e.SERVICE,
            "SEEDSVC_PORT": str(SIDECAR_PORT),
            "SEEDSVC_STATE_FILE": str(workdir / "state" / f"dc{dc}-{pod}.json"),
            "SEEDSVC_FLAP_GRACE": "3",
            "CASSANDRA_DC": f"dc{dc}",
            "SEEDSVC_PEERS": f"dc{peer}=http://{address(peer, 0)}:{SIDECAR_PORT}",
            "SEEDSVC_BOOTSTRAP_DATACENTER": "dc1",
            "SEEDSVC_BACKOFF_MAX": "2",
            # Rule 8 after 10 s instead of 120: the whole-DC restart below re-forms sooner, and the new
            # dc2 is shown waiting past it (it has no state file, so rule 8 is not its to use).
            "SEEDSVC_RESTART_FALLBACK_AFTER": str(RESTART_FALLBACK_AFTER_S),
        },
    )
    return Sidecar(f"dc{dc}-{pod}", env, workdir / "logs" / f"sidecar-dc{dc}-{pod}.log").start()


def _node(dc: int, ordinal: int, sidecar: Sidecar, workdir: Path) -> harness.CassandraNode:
    data_dir = workdir / f"dc{dc}-{ordinal}"
    return harness.CassandraNode(
        address(dc, ordinal), data_dir, cluster_name=CLUSTER_NAME, snitch="GossipingPropertyFileSnitch",
        dc=f"dc{dc}", rack="rack1", seed_provider_class=e2e.SHIM_CLASS,
        seed_provider_params={
            "url": sidecar.seeds_url, "connect_timeout_ms": "500", "read_timeout_ms": "1000",
            "startup_wait_ms": e2e.STARTUP_WAIT_MS, "cache_file": str(data_dir / "seedsvc-seeds.cache"),
            "live_reload": "true", "poll_wait_seconds": "30",
        },
        extra_classpath=[e2e._shim_jar()],
        system_properties={"cassandra.ring_delay_ms": "1000"} if (dc, ordinal) == (1, 0) else None,
    )


def _wait_serving(sidecar: Sidecar, seeds: list[str], *, dc1_stale: bool) -> None:
    """Wait until ``sidecar`` serves exactly ``seeds`` and its JSON marks dc1 stale (or not)."""
    def check(answer: HttpAnswer) -> bool:
        if answer.status != 200 or answer.body != ",".join(seeds):
            return False
        return bool(json.loads(sidecar.get("/seeds?format=json").body)["datacenters"]["dc1"]["stale"]) == dc1_stale

    sidecar.wait_for_seeds(check, 60, f"seeds {','.join(seeds)} with dc1 {'stale' if dc1_stale else 'fresh'}")


def _recreate_slice(plane: ControlPlane, namespace: str, dc: int, old: e2e.ReadinessKeeper, *,
                    ordinals: list[int]) -> e2e.ReadinessKeeper:
    """The DC's EndpointSlice holding only the pods that exist (StatefulSet OrderedReady creates them
    one at a time), kept in step with their CQL ports by a new keeper."""
    old.stop()
    plane.api("DELETE", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{e2e.SLICE}")
    return e2e.ReadinessKeeper(plane, namespace, {f"cassandra-{i}": address(dc, i) for i in ordinals}).start()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("multidc-cassandra")


def test_a_second_dc_created_while_the_first_runs_joins_the_same_ring(
    control_plane: ControlPlane, workdir: Path
) -> None:
    e2e._shim_jar()
    harness.ensure_distribution()
    namespaces = {dc: _namespace(control_plane, f"dc{dc}") for dc in (1, 2)}
    keepers = {dc: e2e.ReadinessKeeper(control_plane, namespaces[dc], {f"cassandra-{i}": address(dc, i)
                                                                     for i in range(2)}) for dc in (1, 2)}
    sidecars: dict[tuple[int, int], Sidecar] = {}
    nodes: dict[tuple[int, int], harness.CassandraNode] = {}
    watch: OwnAddressWatch | None = None
    started = time.monotonic()
    try:
        # dc1 forms: its pod 0 is the bootstrap DC's bootstrap pod and, no peer seed known, seeds itself.
        keepers[1].start()
        for i in range(2):
            sidecars[1, i] = _sidecar(control_plane, namespaces[1], 1, i, workdir)
        sidecars[1, 0].wait_for_list([address(1, 0)], timeout=60)
        for i in range(2):
            nodes[1, i] = _node(1, i, sidecars[1, i], workdir)
            nodes[1, i].start()
            nodes[1, i].wait_for_cql(START_TIMEOUT_S)
            keepers[1].wait_ready(f"cassandra-{i}", True)
        dc1_formed = time.monotonic()

        # Case 5: dc2 is created while dc1's seedsvc (the peer URL, dc1 cassandra-0's sidecar) does not
        # answer. dc2 is not the bootstrap DC and has no state file: its sidecars answer 503 and its
        # first node waits in the shim instead of forming an island.
        sidecars[1, 0].stop()
        keepers[2].start()
        for i in range(2):
            sidecars[2, i] = _sidecar(control_plane, namespaces[2], 2, i, workdir)
        watch = OwnAddressWatch({address(2, i): sidecars[2, i] for i in range(2)}).start()
        nodes[2, 0] = _node(2, 0, sidecars[2, 0], workdir)
        nodes[2, 0].start()
        nodes[2, 0].wait_for_log(r"Waiting up to \d+ ms for seeds from .*503", timeout=120)
        time.sleep(max(0.0, sidecars[2, 1].started + RESTART_FALLBACK_AFTER_S + 2 - time.monotonic()))
        for i in range(2):
            assert sidecars[2, i].seeds().status == 503
        assert nodes[2, 0].is_running() and not nodes[2, 0].serves_cql()
        dc1_back = time.monotonic()
        sidecars[1, 0] = _sidecar(control_plane, namespaces[1], 1, 0, workdir)

        # dc1's seedsvc answers: dc2's sidecars serve dc1's seeds, never a pod's own address.
        sidecars[2, 0].wait_for_list([address(1, 0), address(1, 1)], timeout=60)
        for i in range(2):  # one bootstrap at a time, as Cassandra requires
            if i > 0:
                nodes[2, i] = _node(2, i, sidecars[2, i], workdir)
                nodes[2, i].start()
            nodes[2, i].wait_for_cql(START_TIMEOUT_S)
            keepers[2].wait_ready(f"cassandra-{i}", True)
        dc2_joined = time.monotonic()
        waited = [a for a in watch.answers if a[1] == 503 and a[0] == address(2, 0)]
        assert waited, "dc2 cassandra-0's sidecar was never seen answering 503 while dc1 was unreachable"

        status = ""

        def both_dcs_up() -> bool:
            nonlocal status
            status = nodes[1, 0].nodetool("status")
            return ("Datacenter: dc1" in status and "Datacenter: dc2" in status
                    and all(f"UN  {address(dc, i)}" in status for dc in (1, 2) for i in range(2)))

        wait_until(both_dcs_up, timeout_s=120, what=f"both DCs Up/Normal in one ring; last:\n{status}")
        watch.stop()
        assert watch.violations == [], watch.violations
        assert any(status == 200 for _, status, _ in watch.answers)
        print(f"\nmulti-DC ring: dc1 formed in {dc1_formed - started:.0f}s, dc2 joined "
              f"{dc2_joined - dc1_back:.0f}s after dc1's seedsvc answered (it waited {dc1_back - dc1_formed:.0f}s "
              f"on 503s before); {len(watch.answers)} dc2 answers watched, none its own address")

        # A dc1 seed changes (dc1's cassandra-1 stops serving CQL, turns unready, leaves dc1's seed set
        # after the flap grace): dc2's running node learns it in its Gossiper through its sidecar's
        # long-poll of dc1 and the shim's live reload, without a restart.
        watcher = nodes[2, 1]
        pid = watcher.pid
        both = sorted([address(2, 0), address(1, 0), address(1, 1)])
        poll(lambda: e2e._gossiper_seeds(watcher) == both, 60, f"dc2 cassandra-1's Gossiper seeds = {both}")
        nodes[1, 1].nodetool("disablebinary")
        unready_at = keepers[1].wait_ready("cassandra-1", False, timeout=30)
        sidecars[2, 1].wait_for_list([address(2, 0), address(1, 0)], timeout=60)
        one_left = sorted([address(2, 0), address(1, 0)])
        poll(lambda: e2e._gossiper_seeds(watcher) == one_left, 60, f"dc2's Gossiper seeds = {one_left}")
        reload_at = e2e._log_time(watcher.grep_log(r"Gossiper reloaded seeds")[-1])
        print(f"dc1 seed unready -> dc2 node's Gossiper reloaded: {reload_at - unready_at:.1f}s "
              f"(flap grace 3 s included)")
        assert reload_at >= unready_at
        nodes[1, 1].nodetool("enablebinary")
        keepers[1].wait_ready("cassandra-1", True, timeout=30)
        poll(lambda: e2e._gossiper_seeds(watcher) == both, 60, "dc2's Gossiper seeds restored")
        assert watcher.pid == pid, "no restart"

        # dc1's seedsvc becomes wholly unreachable: dc2 keeps dc1's last seeds, marked stale, and a dc2
        # node restarts and rejoins meanwhile.
        for i in range(2):
            sidecars[1, i].stop()
        _wait_serving(sidecars[2, 1], [address(2, 0), address(1, 0), address(1, 1)], dc1_stale=True)
        for i in range(2):  # the peer DC is now wholly down, Cassandra included
            nodes[1, i].stop()
        nodes[2, 1].stop()
        keepers[2].wait_ready("cassandra-1", False, timeout=60)
        nodes[2, 1].start()
        nodes[2, 1].wait_for_cql(START_TIMEOUT_S)
        keepers[2].wait_ready("cassandra-1", True, timeout=60)
        wait_until(lambda: f"UN  {address(2, 1)}" in nodes[2, 0].nodetool("status"), timeout_s=120,
                   what="the restarted dc2 node Up/Normal again")

        # Case 4: the whole of dc2 restarts, sidecars included, while dc1 is down, in the overlays'
        # OrderedReady order: pod 0 is re-created alone (pod 1 does not exist until pod 0 is ready).
        # Its sidecar restores its state file (the pod has run before) and, with no eligible local
        # peer and no fresh peer seed for the fallback time, serves pod 0 itself (regional recovery):
        # its node starts as its own seed with its saved ring state. Pod 1 follows, served pod 0.
        restart_began = time.monotonic()
        for i in range(2):
            nodes[2, i].stop()
        for i in range(2):
            keepers[2].wait_ready(f"cassandra-{i}", False, timeout=60)
            sidecars[2, i].stop()
        keepers[2] = _recreate_slice(control_plane, namespaces[2], 2, keepers[2], ordinals=[0])
        sidecars[2, 0] = _sidecar(control_plane, namespaces[2], 2, 0, workdir)
        _wait_serving(sidecars[2, 0], [address(2, 0)], dc1_stale=True)
        nodes[2, 0].start()
        nodes[2, 0].wait_for_cql(START_TIMEOUT_S)
        keepers[2].wait_ready("cassandra-0", True, timeout=60)
        keepers[2] = _recreate_slice(control_plane, namespaces[2], 2, keepers[2], ordinals=[0, 1])
        keepers[2].wait_ready("cassandra-0", True, timeout=60)
        sidecars[2, 1] = _sidecar(control_plane, namespaces[2], 2, 1, workdir)
        _wait_serving(sidecars[2, 1], [address(2, 0)], dc1_stale=True)
        nodes[2, 1].start()
        nodes[2, 1].wait_for_cql(START_TIMEOUT_S)
        keepers[2].wait_ready("cassandra-1", True, timeout=60)
        dc2_status = nodes[2, 0].nodetool("status")
        assert all(f"UN  {address(2, i)}" in dc2_status for i in range(2)), dc2_status
        dc2_reformed = time.monotonic()

        # dc1 comes back: its sidecars and nodes restart and the ring holds all four nodes again.
        for i in range(2):
            sidecars[1, i] = _sidecar(control_plane, namespaces[1], 1, i, workdir)
        for i in range(2):
            nodes[1, i].start()
        for i in range(2):
            nodes[1, i].wait_for_cql(START_TIMEOUT_S)
            keepers[1].wait_ready(f"cassandra-{i}", True, timeout=60)
        wait_until(both_dcs_up, timeout_s=120, what=f"both DCs Up/Normal in one ring again; last:\n{status}")
        for i in range(2):
            _wait_serving(sidecars[2, i], [address(2, 1 - i), address(1, 0), address(1, 1)], dc1_stale=False)
        print(f"whole-DC restart of dc2 with dc1 down: re-formed in {dc2_reformed - restart_began:.0f}s; "
              f"all four Up/Normal {time.monotonic() - dc2_reformed:.0f}s after dc1 came back")
    finally:
        if watch is not None:
            watch.stop()
        for keeper in keepers.values():
            keeper.stop()
        for node in nodes.values():
            node.terminate()
        for node in nodes.values():
            node.stop()
        for sidecar in sidecars.values():
            sidecar.stop()
        for namespace in namespaces.values():
            control_plane.api("DELETE", f"/api/v1/namespaces/{namespace}")

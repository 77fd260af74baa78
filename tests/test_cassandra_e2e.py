"""End to end (issue #4): real Cassandra 5.0 nodes, each seeded by its own real seedsvc sidecar.

Three Cassandra 5.0.9 JVMs on 127.0.20.1-3 play the pods ``cassandra-0/1/2``. Each has its own
``seedsvc serve`` process (its own port on the node's address) with the Kubernetes source against the
session's real control plane, in-cluster token files of a ServiceAccount bound to the manifests' Role,
and ``POD_NAME``/``POD_IP`` of its node. The Service's EndpointSlice is managed by hand, by a
:class:`ReadinessKeeper` that does what the kubelet and the EndpointSlice controller would: it lists the
three pods with their addresses and sets each one's ``ready`` condition from a TCP probe of the node's
CQL port (the deploy manifests' readinessProbe). Each node loads the Java shim from
``java-shim/target`` (``url`` = its sidecar, ``cache_file`` in its data directory, live reload on).

The tests show, in order (they share one module-scoped ring):

1. the ring forms with ``cassandra-0`` seeding itself (its sidecar served its own address: the
   bootstrap rule) while the other sidecars answered 503, and the others bootstrapping from it;
2. the Python driver sees three hosts up, and ``system.peers`` on every node lists the other two;
3. a change of the served list reaches a running node's Gossiper without a restart: ``cassandra-1``
   stops serving CQL (``nodetool disablebinary``), turns unready, and after the flap grace the other
   nodes' Gossiper seeds (``nodetool getseeds`` over JMX) drop it, then take it back when it is ready;
4. a node whose sidecar is down starts from the shim's cache file: ``cassandra-2`` and its sidecar are
   stopped, the node is started again with a short ``startup_wait_ms`` and no sidecar, and rejoins.

Addresses: 127.0.20.x, so a concurrent run of tests/test_cassandra_harness.py (127.0.0.1-3) or of the
kubelet stand-in (127.0.10.x) on the same machine cannot collide with these nodes.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, wait_until
from seedsvc_devcluster.pods import incluster_sidecar_env
from seedsvc_devcluster.sidecar_process import SidecarProcess as Sidecar
from tests.cassandra_checks import driver, poll

pytestmark = [pytest.mark.cassandra, pytest.mark.controlplane]

REPO = Path(__file__).resolve().parents[1]
SHIM_JAR = REPO / "java-shim" / "target" / "seedsvc-cassandra-shim.jar"
SHIM_CLASS = "io.seedsvc.cassandra.SidecarSeedProvider"
PODS = ("cassandra-0", "cassandra-1", "cassandra-2")
ADDRESSES = ("127.0.20.1", "127.0.20.2", "127.0.20.3")
ADDRESS_OF = dict(zip(PODS, ADDRESSES, strict=True))
SERVICE = "cassandra"
SERVICE_ACCOUNT = "cassandra"
SLICE = "cassandra-manual"
CLUSTER_NAME = "seedsvc-e2e"
FLAP_GRACE_S = 3.0
START_TIMEOUT_S = 300.0
# The founder's shim gets its list at once; a joiner's shim may wait for cassandra-0 to become ready.
STARTUP_WAIT_MS = "300000"
MEASUREMENTS: dict[str, dict[str, float]] = {}


# --------------------------------------------------------------------------------------------------
# The "kubelet + EndpointSlice controller" for hand-managed pods
# --------------------------------------------------------------------------------------------------


def _cql_open(address: str) -> bool:
    try:
        with socket.create_connection((address, harness.NATIVE_PORT), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class ReadinessKeeper:
    """Keeps the Service's EndpointSlice in step with each node's CQL port, every ``period_s``.

    A background thread probes ``address:9042`` of every pod (the manifests' tcpSocket readinessProbe)
    and rewrites the slice when a ``ready`` condition changes. ``transitions`` records each change.
    """

    plane: ControlPlane
    namespace: str
    pods: dict[str, str]
    period_s: float = 0.5
    ready: dict[str, bool] = field(default_factory=dict)
    transitions: list[tuple[float, str, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices/{SLICE}"

    def start(self) -> ReadinessKeeper:
        self.ready = dict.fromkeys(self.pods, False)
        body = k8s.endpoint_slice(SLICE, SERVICE, [(p, a, False) for p, a in self.pods.items()])
        self.plane.api("POST", f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices", body)
        self._thread = threading.Thread(target=self._loop, name="readiness-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            observed = {pod: _cql_open(address) for pod, address in self.pods.items()}
            if observed != self.ready:
                try:
                    self._write(observed)
                except Exception as exc:  # the next round retries; the test sees the error list
                    self.errors.append(repr(exc))
                else:
                    now = time.time()  # wall clock, to compare with Cassandra's log timestamps
                    for pod, value in observed.items():
                        if value != self.ready[pod]:
                            self.transitions.append((now, pod, value))
                    self.ready = observed
            self._stop.wait(self.period_s)

    def _write(self, observed: dict[str, bool]) -> None:
        current = self.plane.api("GET", self.path)
        for endpoint in current["endpoints"]:
            endpoint["conditions"]["ready"] = observed[endpoint["targetRef"]["name"]]
        self.plane.api("PUT", self.path, current)

    def wait_ready(self, pod: str, value: bool, timeout: float = 60.0) -> float:
        """Wait until the slice says ``pod`` is ready (or not); return when that was written."""
        wait_until(lambda: self.ready.get(pod) == value, timeout_s=timeout, what=f"{pod} ready={value} in the slice")
        return max(t for t, p, v in self.transitions if p == pod and v == value)


# --------------------------------------------------------------------------------------------------
# The ring
# --------------------------------------------------------------------------------------------------


@dataclass
class Pod:
    name: str
    address: str
    data_dir: Path
    sidecar: Sidecar
    node: harness.CassandraNode


@dataclass
class Ring:
    plane: ControlPlane
    namespace: str
    keeper: ReadinessKeeper
    pods: dict[str, Pod]
    early_answers: dict[str, tuple[int, str]]
    workdir: Path

    def make_sidecar(self, pod: str) -> Sidecar:
        return ring_sidecar(self.plane, self.namespace, self.workdir, pod, ADDRESS_OF[pod])


def ring_sidecar(plane: ControlPlane, namespace: str, workdir: Path, pod: str, address: str,
                 **extra: str) -> Sidecar:
    """The pod's sidecar as the ring tests run it (not started): the pod's token, identity and state
    file, the Kubernetes source on the test slice, a short flap grace; ``extra`` adds settings."""
    env = incluster_sidecar_env(
        plane,
        namespace=namespace,
        service_account=SERVICE_ACCOUNT,
        pod_name=pod,
        pod_ip=address,
        sa_dir=workdir / "serviceaccount" / pod,
        extra={
            "SEEDSVC_SOURCE": "kubernetes",
            "SEEDSVC_API": "endpointslices",
            "CASSANDRA_SERVICE": SERVICE,
            "SEEDSVC_FLAP_GRACE": str(FLAP_GRACE_S),
            "SEEDSVC_STATE_FILE": str(workdir / "state" / f"{pod}.json"),
            **extra,
        },
    )
    return Sidecar(pod, env, workdir / "logs" / f"sidecar-{pod}.log")


def _shim_jar() -> Path:
    if not SHIM_JAR.is_file():
        pytest.fail(
            f"{SHIM_JAR} is missing: build it with `cd java-shim && mvn -B -q -ntp package -DskipTests` "
            "(or `make prerequisites`)",
            pytrace=False,
        )
    return SHIM_JAR


def _node(pod: str, data_dir: Path, sidecar: Sidecar, *, founder: bool) -> harness.CassandraNode:
    return harness.CassandraNode(
        ADDRESS_OF[pod],
        data_dir,
        cluster_name=CLUSTER_NAME,
        seed_provider_class=SHIM_CLASS,
        seed_provider_params={
            "url": sidecar.seeds_url,
            "connect_timeout_ms": "500",
            "read_timeout_ms": "1000",
            "startup_wait_ms": STARTUP_WAIT_MS,
            "cache_file": str(data_dir / "seedsvc-seeds.cache"),
            "live_reload": "true",
            "poll_wait_seconds": "30",
        },
        extra_classpath=[_shim_jar()],
        # The founder has nobody to wait for; a shorter ring delay saves it ~4 s (docs/cassandra-harness.md).
        system_properties={"cassandra.ring_delay_ms": "1000"} if founder else None,
    )


def _create(plane: ControlPlane, namespace: str, obj: dict[str, Any]) -> None:
    version = obj["apiVersion"]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    plural = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    plane.api("POST", f"{prefix}/namespaces/{namespace}/{plural}", obj)


def _set_up_namespace(plane: ControlPlane) -> str:
    namespace = f"cassandra-e2e-{uuid.uuid4().hex[:6]}"
    plane.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    wait_until(
        lambda: plane.exists(f"/api/v1/namespaces/{namespace}/serviceaccounts/default"),
        timeout_s=30,
        what=f"default ServiceAccount in {namespace}",
    )
    service = k8s.headless_service(SERVICE)
    del service["spec"]["selector"]  # no selector: the EndpointSlice controller leaves our slice alone
    for obj in (
        k8s.service_account(SERVICE_ACCOUNT),
        k8s.role_for_endpointslices("cassandra-seedsvc"),
        k8s.role_binding("cassandra-seedsvc", "cassandra-seedsvc", SERVICE_ACCOUNT, namespace),
        service,
    ):
        _create(plane, namespace, obj)
    return namespace


@pytest.fixture(scope="module")
def ring(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ring]:
    _shim_jar()
    harness.ensure_distribution()
    workdir = tmp_path_factory.mktemp("cassandra-e2e")
    namespace = _set_up_namespace(control_plane)
    keeper = ReadinessKeeper(control_plane, namespace, dict(ADDRESS_OF))
    ring = Ring(control_plane, namespace, keeper, {}, {}, workdir)
    try:
        keeper.start()
        for pod in PODS:
            sidecar = ring.make_sidecar(pod).start()
            data_dir = workdir / pod
            ring.pods[pod] = Pod(pod, ADDRESS_OF[pod], data_dir, sidecar, _node(pod, data_dir, sidecar,
                                                                                 founder=pod == PODS[0]))
        # Before any node runs: cassandra-0 may seed itself (bootstrap rule), the others must wait.
        first = ring.pods[PODS[0]].sidecar.wait_for_list([ADDRESS_OF[PODS[0]]], timeout=30)
        ring.early_answers[PODS[0]] = (first.status, first.body)
        for pod in PODS[1:]:
            answer = ring.pods[pod].sidecar.wait_for_seeds(lambda a: a.status == 503, 30, "a 503")
            ring.early_answers[pod] = (answer.status, answer.body)

        # cassandra-0 founds the ring. cassandra-1's JVM starts at the same time: its shim waits through
        # the sidecar's 503s (no island) until cassandra-0 serves CQL and turns ready.
        founder, second, third = (ring.pods[p] for p in PODS)
        founder.node.start()
        second.node.start()
        founder.node.wait_for_cql(START_TIMEOUT_S)
        keeper.wait_ready(PODS[0], True)
        second.node.wait_for_cql(START_TIMEOUT_S)
        keeper.wait_ready(PODS[1], True)
        # One bootstrap at a time (Cassandra refuses concurrent range movements by default; here it would
        # risk two joiners picking the same tokens).
        third.node.start()
        third.node.wait_for_cql(START_TIMEOUT_S)
        keeper.wait_ready(PODS[2], True)
        for member in ring.pods.values():
            MEASUREMENTS[member.name] = {
                "startup_s": member.node.startup_seconds or 0.0,
                "rss_mib": member.node.rss_bytes() / 2**20,
                "sidecar_rss_mib": member.sidecar.rss_bytes() / 2**20,
            }
        yield ring
    finally:
        keeper.stop()
        for member in ring.pods.values():
            member.node.terminate()
        for member in ring.pods.values():
            member.node.stop()
            member.sidecar.stop()
        _print_measurements()
        control_plane.api("DELETE", f"/api/v1/namespaces/{namespace}")


def _print_measurements() -> None:
    print("\nend-to-end measurements: " + json.dumps(MEASUREMENTS, indent=None, sort_keys=True))


# --------------------------------------------------------------------------------------------------
# Driver helpers
# --------------------------------------------------------------------------------------------------


def _pooled_hosts(session: Any, addresses: set[str], timeout: float = 60) -> dict[str, Any]:
    def pooled() -> dict[str, Any] | None:
        hosts = {str(h.address): h for h, pool in session.get_pool_state().items() if pool.get("open_count", 0) > 0}
        return hosts if addresses <= set(hosts) else None

    return poll(pooled, timeout, f"driver pools to {sorted(addresses)}")  # type: ignore[no-any-return]


def _log_time(line: str) -> float:
    """The wall-clock time of a system.log line (logback's ISO8601, the JVM's local time zone)."""
    match = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", line)
    assert match, line
    return datetime.datetime.strptime(match.group(0), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _gossiper_seeds(node: harness.CassandraNode) -> list[str]:
    """Gossiper's current seeds over real JMX (``nodetool getseeds``), as IPv4 strings."""
    out = node.nodetool("getseeds")
    return sorted(re.findall(r"/?(\d+\.\d+\.\d+\.\d+)(?::\d+)?", out))


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_ring_forms_with_cassandra_0_seeding_itself(ring: Ring) -> None:
    founder = ring.pods[PODS[0]]
    # The bootstrap rule, as served before any node ran.
    assert ring.early_answers[PODS[0]] == (200, ADDRESS_OF[PODS[0]])
    for pod in PODS[1:]:
        assert ring.early_answers[pod][0] == 503, ring.early_answers
    # cassandra-0 started from its own address and founded the ring; it did not bootstrap.
    using = r"Using seeds \[{}\] from the sidecar"
    assert founder.node.grep_log(using.format(re.escape(founder.address))), founder.node.diagnostics()
    assert not founder.node.grep_log(r"JOINING: Starting to bootstrap")
    # The others waited for the sidecar (cassandra-1's shim saw 503s), then bootstrapped from cassandra-0.
    assert ring.pods[PODS[1]].node.grep_log(r"Waiting up to \d+ ms for seeds from .*503")
    # cassandra-1 was served cassandra-0 alone; cassandra-2, started once cassandra-1 was ready, both.
    served = {PODS[1]: [founder.address], PODS[2]: [founder.address, ring.pods[PODS[1]].address]}
    for pod in PODS[1:]:
        node = ring.pods[pod].node
        assert node.grep_log(using.format(re.escape(", ".join(served[pod])))), node.diagnostics()
        assert node.grep_log(r"JOINING: Starting to bootstrap"), node.diagnostics()
        cache = (ring.pods[pod].data_dir / "seedsvc-seeds.cache").read_text()
        assert founder.address in cache
    for member in ring.pods.values():
        assert member.node.is_running() and member.sidecar.is_running()
        rss = member.node.rss_bytes() / 2**20
        print(f"{member.name} {member.address}: CQL after {member.node.startup_seconds:.1f}s, RSS {rss:.0f} MiB")
    # Once all three are ready, every sidecar serves the others (count 3, self left out), discovered from
    # the slice through the Kubernetes source.
    for pod in PODS:
        ring.pods[pod].sidecar.wait_for_list([ADDRESS_OF[p] for p in PODS if p != pod], timeout=30)
        document = json.loads(ring.pods[pod].sidecar.get("/seeds?format=json").body)
        assert (document["source"], document["mode"], document["stale"]) == ("kubernetes", "discovered", False)
        candidates = {(c["pod"], c["address"], c["ready"], c["seed"]) for c in document["candidates"]}
        assert candidates == {(p, ADDRESS_OF[p], True, True) for p in PODS}, document


def test_driver_sees_three_nodes_up(ring: Ring) -> None:
    cluster = driver([ADDRESSES[0]])
    try:
        session = cluster.connect()
        hosts = _pooled_hosts(session, set(ADDRESSES))
        poll(lambda: all(h.is_up for h in cluster.metadata.all_hosts()), 60, "all hosts up in driver metadata")
        assert {str(h.address) for h in cluster.metadata.all_hosts()} == set(ADDRESSES)
        host_ids = set()
        for address in ADDRESSES:

            def sees_the_others(address: str = address) -> bool:
                rows = session.execute("SELECT peer FROM system.peers", host=hosts[address])
                return {str(r.peer) for r in rows} == set(ADDRESSES) - {address}

            # system.peers is written as gossip reaches each node: the last joiner can lag a moment.
            poll(sees_the_others, 60, f"{address}'s system.peers to list exactly the other two")
            local = session.execute("SELECT cluster_name, host_id FROM system.local", host=hosts[address]).one()
            assert local.cluster_name == CLUSTER_NAME
            host_ids.add(local.host_id)
        assert len(host_ids) == 3
    finally:
        cluster.shutdown()
    status = ring.pods[PODS[0]].node.nodetool("status")
    for address in ADDRESSES:
        assert any(line.startswith("UN") and address in line for line in status.splitlines()), status


def test_seed_list_change_reaches_running_gossiper(ring: Ring) -> None:
    """cassandra-1 closes its CQL port: unready, and after the flap grace every other node's Gossiper
    drops it from its seeds (without a restart); CQL back: the seeds come back."""
    zero, one, two = (ring.pods[p] for p in PODS)
    pids = {p.name: p.node.pid for p in ring.pods.values()}
    # Before: every node's Gossiper has the other two (the founder reloaded from [itself]).
    poll(lambda: _gossiper_seeds(zero.node) == [one.address, two.address], 60, "cassandra-0's Gossiper seeds = [1, 2]")
    poll(lambda: _gossiper_seeds(two.node) == [zero.address, one.address], 60, "cassandra-2's Gossiper seeds = [0, 1]")

    one.node.nodetool("disablebinary")
    unready_at = ring.keeper.wait_ready(one.name, False, timeout=30)
    zero.sidecar.wait_for_list([two.address], timeout=FLAP_GRACE_S + 30)
    served_at = time.time()
    two.sidecar.wait_for_list([zero.address], timeout=30)
    one.sidecar.wait_for_list([zero.address, two.address], timeout=30)  # its own view: unchanged
    assert served_at - unready_at >= FLAP_GRACE_S - 0.5, "the unready seed must keep its place for the grace"
    poll(lambda: _gossiper_seeds(zero.node) == [two.address], 60, "cassandra-0's Gossiper seeds = [cassandra-2]")
    poll(lambda: _gossiper_seeds(two.node) == [zero.address], 60, "cassandra-2's Gossiper seeds = [cassandra-0]")
    reloaded = zero.node.wait_for_log(rf"Gossiper reloaded seeds: \[{re.escape(two.address)}\]", 10)
    MEASUREMENTS["seed-change"] = {
        "unready_to_served_s": served_at - unready_at,
        "unready_to_gossiper_reload_s": _log_time(reloaded) - unready_at,
    }

    one.node.nodetool("enablebinary")
    ring.keeper.wait_ready(one.name, True, timeout=30)
    zero.sidecar.wait_for_list([one.address, two.address], timeout=30)
    poll(lambda: _gossiper_seeds(zero.node) == [one.address, two.address], 60, "cassandra-0's seeds restored")
    poll(lambda: _gossiper_seeds(two.node) == [zero.address, one.address], 60, "cassandra-2's seeds restored")
    assert {p.name: p.node.pid for p in ring.pods.values()} == pids, "no node was restarted"
    assert all(p.node.is_running() for p in ring.pods.values())
    assert ring.keeper.errors == []


def test_node_starts_from_cache_when_its_sidecar_is_down(ring: Ring) -> None:
    """Stop cassandra-2 and its sidecar; start cassandra-2 again without a sidecar and a 2 s start-up
    wait: the shim falls back to the cache file it wrote, and the node rejoins the ring."""
    zero, two = ring.pods[PODS[0]], ring.pods[PODS[2]]
    cache = two.data_dir / "seedsvc-seeds.cache"
    cached = cache.read_text().strip()
    assert set(cached.split(",")) == {ADDRESS_OF[PODS[0]], ADDRESS_OF[PODS[1]]}, cached

    two.node.stop()
    assert two.sidecar.stop() == 0
    ring.keeper.wait_ready(two.name, False, timeout=30)
    assert two.sidecar.seeds().status == 0  # nothing listens there any more

    two.node.seed_provider_params["startup_wait_ms"] = "2000"
    two.node.start()
    seconds = two.node.wait_for_cql(START_TIMEOUT_S)
    ring.keeper.wait_ready(two.name, True, timeout=30)
    assert two.node.grep_log(r"the sidecar gave no list .*using the cached list from " + re.escape(str(cache)),
                             since_start=True), two.node.diagnostics()
    assert not two.node.grep_log(r"JOINING: Starting to bootstrap", since_start=True), "a restart must not bootstrap"
    MEASUREMENTS["cassandra-2 restart from cache"] = {"startup_s": seconds, "rss_mib": two.node.rss_bytes() / 2**20}

    def all_up_normal() -> bool:
        status = zero.node.nodetool("status")
        return all(any(ln.startswith("UN") and a in ln for ln in status.splitlines()) for a in ADDRESSES)

    poll(all_up_normal, 60, "three UN nodes after the restart", interval=1.0)
    cluster = driver([ADDRESSES[0]])
    try:
        session = cluster.connect()
        hosts = _pooled_hosts(session, set(ADDRESSES))
        peers = {str(r.peer) for r in session.execute("SELECT peer FROM system.peers", host=hosts[two.address])}
        assert peers == {ADDRESS_OF[PODS[0]], ADDRESS_OF[PODS[1]]}
    finally:
        cluster.shutdown()

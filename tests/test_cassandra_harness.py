"""The Cassandra harness runs real Cassandra 5.0 nodes on loopback addresses.

First two single-node tests: a node on a pod-like 127.0.40.x address serves CQL, and no JVM outlives
its Python process. Then a module-scoped 3-node cluster on 127.0.0.1-3: node 1 (the seed) founds it,
nodes 2 and 3 bootstrap into it, and the Python driver checks membership from every node's point of
view, writes at ALL, and survives a SIGKILL and restart of node 3. The fast tests at the bottom check
the generated configuration without starting a JVM.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seedsvc_devcluster import cassandra as harness
from tests.cassandra_checks import driver

ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
# Not 127.0.0.x, like pod IPs, but outside the ranges other tests use (kubelet stand-in 127.0.10.x,
# e2e 127.0.20.x, whole system 127.0.30.x), so concurrent runs on one machine cannot collide.
POD_LIKE_ADDRESSES = ("127.0.40.5", "127.0.40.6")


def _connect(contact_point: str) -> Any:
    return driver([contact_point])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.CassandraCluster]:
    nodes = harness.CassandraCluster(ADDRESSES, tmp_path_factory.mktemp("cassandra"), seeds=[ADDRESSES[0]])
    with nodes:
        nodes.start(timeout_per_node=240)
        yield nodes


@pytest.fixture(scope="module")
def session(cluster: harness.CassandraCluster) -> Iterator[Any]:
    """A driver session through the seed; the driver discovers the other nodes from it."""
    client = _connect(ADDRESSES[0])
    try:
        yield client.connect()
    finally:
        client.shutdown()


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition()`` until it is true; the driver learns of peers asynchronously."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


# ---- single nodes, before the cluster starts (so they do not compete with it for the 2 cores) ----


def _run_harness_script(code: str) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter that imports the harness, stdout piped back."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=harness.REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` has exited (a zombie waiting for its new parent to reap it counts)."""

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    _wait_until(gone, timeout, f"JVM {pid} to exit")


@pytest.mark.cassandra
def test_pod_ip_node_serves_cql_and_dies_with_a_normal_exit(tmp_path: Path) -> None:
    """A node on a pod-like 127.0.x.y address serves CQL; an interpreter exit without stop() kills it."""
    code = f"""
        from seedsvc_devcluster.cassandra import CassandraNode
        node = CassandraNode({POD_LIKE_ADDRESSES[0]!r}, {str(tmp_path / "pod")!r}, cluster_name="pods")
        node.start()
        node.wait_for_cql(240)
        print(node.pid, flush=True)
        """
    with _run_harness_script(code) as script:
        out, _ = script.communicate(timeout=300)
    assert script.returncode == 0, out
    _wait_gone(int(out.split()[-1]), 15)


@pytest.mark.cassandra
def test_jvm_dies_when_the_test_process_is_killed(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL of the Python process takes its JVM along, with no cleanup code run."""
    code = f"""
        import time
        from seedsvc_devcluster.cassandra import CassandraNode
        node = CassandraNode({POD_LIKE_ADDRESSES[1]!r}, {str(tmp_path / "orphan")!r})
        node.start()
        print(node.pid, flush=True)
        time.sleep(120)
        """
    with _run_harness_script(code) as script:  # the context closes the pipe
        assert script.stdout is not None
        jvm_pid = int(script.stdout.readline())
        assert Path(f"/proc/{jvm_pid}").exists()
        script.kill()
        script.wait(10)
    _wait_gone(jvm_pid, 15)


# ---- the 3-node cluster ---------------------------------------------------------------------------


@pytest.mark.cassandra
def test_nodes_started_and_report_resources(cluster: harness.CassandraCluster) -> None:
    for node in cluster.nodes:
        assert node.is_running(), node.diagnostics()
        assert node.startup_seconds is not None
        assert node.grep_log(harness.STARTUP_COMPLETE_MARKER)
        assert node.serves_cql()
        assert node.rss_bytes() > 0
        print(f"{node.address}: started in {node.startup_seconds:.1f}s, RSS {node.rss_bytes() / 2**20:.0f} MiB")
    # Nodes 2 and 3 are not seeds, so they must have bootstrapped rather than founded a cluster.
    for node in cluster.nodes[1:]:
        assert node.grep_log(r"JOINING: Starting to bootstrap"), node.diagnostics()


def _hosts_with_pools(session: Any) -> dict[str, Any]:
    """Wait until the driver has an open connection pool to every node; return its Host objects.

    ``Host.is_up`` turns true before the session's pool to that host is connected, and a query
    pinned to a host without a pool fails at once, so wait for the pools themselves.
    """

    def pooled() -> dict[str, Any]:
        state = session.get_pool_state()
        return {str(host.address): host for host, pool in state.items() if pool.get("open_count", 0) > 0}

    _wait_until(lambda: set(ADDRESSES) <= set(pooled()), 60, "driver connection pools to all three nodes")
    return pooled()


@pytest.mark.cassandra
def test_every_node_sees_the_other_two_in_system_peers(cluster: harness.CassandraCluster, session: Any) -> None:
    hosts = _hosts_with_pools(session)
    assert all(hosts[a].is_up for a in ADDRESSES)
    for address in ADDRESSES:
        # system.peers is written as gossip reaches each node: the last joiner can lag a moment.
        deadline = time.monotonic() + 60
        while True:
            rows = session.execute("SELECT peer, rpc_address FROM system.peers", host=hosts[address])
            peers = {str(row.peer) for row in rows}
            if peers == set(ADDRESSES) - {address} or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert peers == set(ADDRESSES) - {address}, f"{address} sees peers {peers}"
        local = session.execute("SELECT cluster_name, release_version FROM system.local", host=hosts[address]).one()
        assert local.cluster_name == "seedsvc-test"
        assert local.release_version == harness.DEFAULT_VERSION


@pytest.mark.cassandra
def test_write_at_all_reads_back_from_every_node(cluster: harness.CassandraCluster, session: Any) -> None:
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    execute = session.execute
    execute(
        "CREATE KEYSPACE IF NOT EXISTS harness WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    execute("CREATE TABLE IF NOT EXISTS harness.kv (k text PRIMARY KEY, v text)")
    write = SimpleStatement("INSERT INTO harness.kv (k, v) VALUES (%s, %s)", consistency_level=ConsistencyLevel.ALL)
    execute(write, ("answer", "42"))
    hosts = _hosts_with_pools(session)
    read = SimpleStatement("SELECT v FROM harness.kv WHERE k = %s", consistency_level=ConsistencyLevel.ONE)
    for address in ADDRESSES:
        assert execute(read, ("answer",), host=hosts[address]).one().v == "42"


@pytest.mark.cassandra
def test_nodetool_status_shows_three_up_normal_nodes(cluster: harness.CassandraCluster) -> None:
    status = cluster.nodes[0].nodetool("status")
    for address in ADDRESSES:
        assert any(line.startswith("UN") and address in line for line in status.splitlines()), status


@pytest.mark.cassandra
def test_killed_node_restarts_and_rejoins(cluster: harness.CassandraCluster, session: Any) -> None:
    """SIGKILL then restart on the same data directory: no bootstrap, same host, back in the ring."""
    node = cluster.nodes[-1]
    host_id_before = session.execute("SELECT host_id FROM system.local", host=_hosts_with_pools(session)[node.address])
    assert node.kill() == -9
    assert not node.is_running() and node.rss_bytes() == 0 and not node.serves_cql()
    node.start()
    node.wait_for_cql(240)
    assert not node.grep_log(r"JOINING: Starting to bootstrap", since_start=True), "a restart must not bootstrap"
    assert len(node.grep_log(harness.STARTUP_COMPLETE_MARKER)) == 2  # the log spans both runs
    host_id_after = session.execute("SELECT host_id FROM system.local", host=_hosts_with_pools(session)[node.address])
    assert host_id_after.one().host_id == host_id_before.one().host_id
    status = cluster.nodes[0].nodetool("status")
    assert any(line.startswith("UN") and node.address in line for line in status.splitlines()), status


# ---- no JVM needed below ---------------------------------------------------------------------------


def test_yaml_for_pod_ip_and_custom_seed_provider(tmp_path: Path) -> None:
    import yaml

    node = harness.CassandraNode(
        "127.0.10.5",
        tmp_path / "n",
        seed_provider_class="io.seedsvc.cassandra.SidecarSeedProvider",
        seed_provider_params={"url": "http://127.0.0.1:8080/seeds", "cache_file": str(tmp_path / "seeds")},
        extra_classpath=[tmp_path / "shim.jar"],
        system_properties={"cassandra.ring_delay_ms": "1000"},
    )
    node.write_config()
    config = yaml.safe_load(node.config_path.read_text())
    assert config["listen_address"] == config["rpc_address"] == "127.0.10.5"
    assert config["seed_provider"] == [
        {
            "class_name": "io.seedsvc.cassandra.SidecarSeedProvider",
            "parameters": [{"url": "http://127.0.0.1:8080/seeds", "cache_file": str(tmp_path / "seeds")}],
        }
    ]
    assert config["data_file_directories"] == [str(node.data_dir / "data")]
    fake_home = tmp_path / "dist"
    (fake_home / "lib").mkdir(parents=True)
    (fake_home / "lib" / "jamm-0.4.0.jar").touch()
    argv = node.jvm_argv(Path("/usr/bin/java"), fake_home)
    classpath = argv[argv.index("-cp") + 1].split(":")
    assert classpath == [f"{fake_home}/lib/*", str(tmp_path / "shim.jar")]
    assert f"-javaagent:{fake_home}/lib/jamm-0.4.0.jar" in argv
    assert f"-Dcassandra.config=file://{node.config_path}" in argv
    assert "-Dcassandra.ring_delay_ms=1000" in argv and "-Dcassandra.ring_delay_ms=5000" not in argv


def test_default_seeds_are_the_node_itself(tmp_path: Path) -> None:
    node = harness.CassandraNode("127.0.0.7", tmp_path)
    assert node.seed_provider_params == {"seeds": "127.0.0.7"}


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.1", "::1", "localhost"])
def test_refuses_non_loopback_addresses(tmp_path: Path, address: str) -> None:
    with pytest.raises(harness.CassandraHarnessError):
        harness.CassandraNode(address, tmp_path)

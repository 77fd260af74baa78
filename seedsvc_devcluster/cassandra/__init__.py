"""Real Apache Cassandra nodes for tests: one JVM per node on a loopback address.

The server classpath comes from Maven Central only (``org.apache.cassandra:cassandra-all`` and its
runtime dependencies, resolved by ``seedsvc_devcluster/cassandra/cassandra_dist/pom.xml``) and is
cached in ``~/.cache/seedsvc/cassandra/<version>/lib/``. Each node gets its own directory holding a
generated ``cassandra.yaml``, ``logback.xml``, the data, commit log, hints and caches, ``system.log``
and ``stdout.log``.

Shell usage (from the repository root)::

    python3 -m seedsvc_devcluster.cassandra fetch            # download if needed, print the distribution dir
    python3 -m seedsvc_devcluster.cassandra run --address 127.0.0.1 --data-dir /tmp/c1   # one node, Ctrl-C stops

Python usage::

    node = CassandraNode("127.0.0.1", tmp_path / "n1", seeds=["127.0.0.1"])
    node.start()
    node.wait_for_cql(timeout=180)
    ...
    node.stop()

Every started JVM is in its own process group and is killed when its ``CassandraNode`` is garbage
collected, when the interpreter exits, and (for nodes started from the main thread) when the Python
process dies, through ``PR_SET_PDEATHSIG``.

Modules: ``release`` (what differs between Cassandra versions), ``distribution`` (the jars),
``java`` (finding a JDK), ``cassandra_yaml`` and ``config_files`` (a node's conf/), ``jvm`` (the
server command line), ``node`` (one JVM), ``cluster`` (a ring), ``nodetool``, ``cql_driver``,
``logs``.
"""

from seedsvc_devcluster.cassandra.cassandra_yaml import (
    NATIVE_PORT,
    SIMPLE_SEED_PROVIDER,
    STORAGE_PORT,
    render_cassandra_yaml,
)
from seedsvc_devcluster.cassandra.cluster import CassandraCluster
from seedsvc_devcluster.cassandra.config_files import render_logback_xml, render_rackdc_properties
from seedsvc_devcluster.cassandra.cql_driver import driver
from seedsvc_devcluster.cassandra.distribution import cache_root, ensure_distribution
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError, DriverUnavailable
from seedsvc_devcluster.cassandra.node import STARTUP_COMPLETE_MARKER, CassandraNode, check_loopback
from seedsvc_devcluster.cassandra.release import DEFAULT_VERSION, Release, release_for
from seedsvc_devcluster.paths import REPO_ROOT

__all__ = [
    "DEFAULT_VERSION",
    "NATIVE_PORT",
    "REPO_ROOT",
    "SIMPLE_SEED_PROVIDER",
    "STARTUP_COMPLETE_MARKER",
    "STORAGE_PORT",
    "CassandraCluster",
    "CassandraHarnessError",
    "CassandraNode",
    "DriverUnavailable",
    "Release",
    "cache_root",
    "check_loopback",
    "driver",
    "ensure_distribution",
    "release_for",
    "render_cassandra_yaml",
    "render_logback_xml",
    "render_rackdc_properties",
]

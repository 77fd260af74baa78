"""What differs between Cassandra releases: the Java it needs and the JVM module options it passes.

Everything that depends on the Cassandra version is chosen here (Java, module options), in
:mod:`.cassandra_yaml` (the configuration keys) and in ``cassandra_dist/pom.xml`` (which jars).
Another release line is one more :class:`Release` in :func:`release_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from seedsvc_devcluster.cassandra.errors import CassandraHarnessError

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


@dataclass(frozen=True, kw_only=True)
class Release:
    """The version-dependent facts the harness needs to launch one Cassandra release line."""

    line: str
    java_major: int
    java_home_candidates: tuple[str, ...]
    # Passed to the server and to nodetool: both load Cassandra classes that touch JDK internals.
    module_options: tuple[str, ...]
    # The newest native protocol the line speaks; saves the driver rounds of version negotiation.
    protocol_version: int


# Cassandra 5.0 supports Java 11 and 17; this harness runs it on 17 with the Java 17 module options.
CASSANDRA_5_0: Final = Release(
    line="5.0",
    java_major=17,
    java_home_candidates=(
        "/usr/lib/jvm/java-17-openjdk-amd64",
        "/usr/lib/jvm/java-17-openjdk-arm64",
        "/usr/lib/jvm/java-17-openjdk",
        "/usr/lib/jvm/temurin-17-jdk-amd64",
    ),
    module_options=JAVA17_MODULE_OPTIONS,
    protocol_version=5,
)

RELEASES: Final[tuple[Release, ...]] = (CASSANDRA_5_0,)


def release_line(version: str) -> str:
    """``"5.0.9"`` -> ``"5.0"``."""
    return ".".join(version.split(".")[:2])


def release_for(version: str) -> Release:
    """The :class:`Release` for a full version such as ``5.0.9``; refuses lines the harness cannot run."""
    line = release_line(version)
    for release in RELEASES:
        if release.line == line:
            return release
    known = ", ".join(r.line for r in RELEASES)
    raise CassandraHarnessError(f"Cassandra {version}: this harness runs release lines {known} only")

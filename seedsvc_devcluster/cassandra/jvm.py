"""The server JVM's command line: heap, GC and module options, system properties, classpath.

Which module options a release needs comes from :mod:`.release`; the options here are those of
Cassandra 5.0's conf/jvm-server.options and jvm17-server.options that matter for small test nodes.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from seedsvc_devcluster import processes
from seedsvc_devcluster.cassandra.distribution import jamm_agent
from seedsvc_devcluster.cassandra.release import Release

CASSANDRA_MAIN_CLASS: Final = "org.apache.cassandra.service.CassandraDaemon"

# General server options from conf/jvm-server.options and jvm17-server.options, minus those that only
# matter for big production heaps (AlwaysPreTouch would fault in the whole heap and slow start-up).
SERVER_JVM_OPTIONS: Final[tuple[str, ...]] = (
    "-ea",
    "-da:net.openhft...",  # Chronicle asserts by design run out of memory (comment in jvm-server.options)
    "-XX:+UseThreadPriorities",
    "-Xss256k",
    "-XX:+UseTLAB",
    "-XX:+ResizeTLAB",
    "-XX:+PerfDisableSharedMem",  # no hsperfdata mmap files shared between test JVMs
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:+DisableExplicitGC",
    "-XX:+ExitOnOutOfMemoryError",  # a wedged test JVM is worse than a dead one
    # C1 only: C2 compiling Cassandra's start-up path costs more CPU than it saves in short test runs
    # (measured: 7 s instead of 15-19 s of CPU per start, and 2-4x faster wall time on a busy 2-core
    # machine). Pass -XX:TieredStopAtLevel=4 in extra_jvm_args for full C2 in long benchmarks.
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Dcassandra-foreground=yes",
)

# Shorten waits that exist for big production clusters. Each can be overridden through
# ``system_properties``.
FAST_TEST_PROPERTIES: Final[Mapping[str, str]] = {
    # How long a joining node waits for ring information / pending ranges (default 30 s).
    "cassandra.ring_delay_ms": "5000",
    # Skip the wait for gossip to settle (up to ~30 s per start).
    "cassandra.skip_wait_for_gossip_to_settle": "0",
    # Let nodes bootstrap while another one is still joining.
    "cassandra.consistent.rangemovement": "false",
    "cassandra.superuser_setup_delay_ms": "0",
}

_PR_CAPBSET_DROP: Final = 24
_CAP_IPC_LOCK: Final = 14


def server_argv(
    *,
    java: Path,
    home: Path,
    release: Release,
    heap: tuple[str, str],
    properties: Mapping[str, str],
    extra_classpath: Sequence[Path],
    extra_jvm_args: Sequence[str],
) -> list[str]:
    """The complete server command line; ``heap`` is (``-Xms``, ``-Xmx``)."""
    lib = home / "lib"
    # conf/ is not on the classpath: every file in it is named by a property instead, and a
    # non-empty directory on the classpath rules out class-data-sharing archives.
    classpath = os.pathsep.join([f"{lib}/*", *map(str, extra_classpath)])
    return [
        str(java),
        f"-Xms{heap[0]}",
        f"-Xmx{heap[1]}",
        *SERVER_JVM_OPTIONS,
        *release.module_options,
        f"-javaagent:{jamm_agent(lib)}",
        *(f"-D{key}={value}" for key, value in properties.items()),
        *extra_jvm_args,
        "-cp",
        classpath,
        CASSANDRA_MAIN_CLASS,
    ]


def server_environment() -> dict[str, str]:
    """As cassandra-env.sh: fewer glibc malloc arenas, so less RSS per JVM."""
    return {**os.environ, "MALLOC_ARENA_MAX": "4"}


def forbid_memory_locking() -> None:
    """In the child before exec: make Cassandra's start-up ``mlockall`` fail harmlessly, as for any non-root user.

    As root it succeeds and faults in every mapped page (the whole initial heap and more), so RSS
    would measure the configuration instead of the node, and test behaviour would differ between
    root and non-root machines. A zero RLIMIT_MEMLOCK is ignored while the process holds
    CAP_IPC_LOCK, so that capability is also dropped from the bounding set the JVM is exec'd with.
    """
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    processes.PRCTL(_PR_CAPBSET_DROP, _CAP_IPC_LOCK, 0, 0, 0)  # fails (EPERM) when not root: nothing to drop

"""Real Apache Cassandra nodes for tests: one JVM per node on a loopback address.

The server classpath comes from Maven Central only (``org.apache.cassandra:cassandra-all`` and its
runtime dependencies, resolved by ``seedsvc_devcluster/cassandra_dist/pom.xml``) and is cached in
``~/.cache/seedsvc/cassandra/<version>/lib/``. Each node gets its own directory holding a generated
``cassandra.yaml``, ``logback.xml``, the data, commit log, hints and caches, ``system.log`` and
``stdout.log``.

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
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from seedsvc_devcluster import processes

# The newest 5.0.x on Maven Central when this was written; keep in sync with cassandra_dist/pom.xml.
DEFAULT_VERSION: Final = "5.0.9"
SIMPLE_SEED_PROVIDER: Final = "org.apache.cassandra.locator.SimpleSeedProvider"
CASSANDRA_MAIN_CLASS: Final = "org.apache.cassandra.service.CassandraDaemon"
NODETOOL_MAIN_CLASS: Final = "org.apache.cassandra.tools.NodeTool"

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DIST_POM: Final = Path(__file__).resolve().parent / "cassandra_dist" / "pom.xml"
STORAGE_PORT: Final = 7000
NATIVE_PORT: Final = 9042

# A cold ~/.m2 downloads about 70 MB in ~100 jars; generous so a slow mirror still finishes, bounded
# so a hung Maven still ends.
FETCH_TIMEOUT_S: Final = 1800.0
# Cassandra drains on SIGTERM (flushes memtables, stops gossip); small test nodes finish in seconds.
STOP_TIMEOUT_S: Final = 30.0
POLL_INTERVAL_S: Final = 0.2
# Written by CassandraDaemon.start() once the native transport is up (Cassandra 4.0+).
STARTUP_COMPLETE_MARKER: Final = "Startup complete"
# Cassandra 5.0 supports Java 11 and 17; this harness passes the Java 17 module options.
SUPPORTED_JAVA_MAJOR: Final = 17
JAVA_HOME_CANDIDATES: Final = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/java-17-openjdk-arm64",
    "/usr/lib/jvm/java-17-openjdk",
    "/usr/lib/jvm/temurin-17-jdk-amd64",
)

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


class CassandraHarnessError(RuntimeError):
    """A prerequisite is missing or a node failed; the message says which and what to do."""


# --------------------------------------------------------------------------------------------------
# Distribution
# --------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$SEEDSVC_CACHE_DIR`` or ``$XDG_CACHE_HOME/seedsvc`` or ``~/.cache/seedsvc``, plus cassandra.

    The same rule as the control-plane cache in ``seedsvc_devcluster/build.py``.
    """
    explicit = os.environ.get("SEEDSVC_CACHE_DIR")
    if explicit:
        return Path(explicit) / "cassandra"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seedsvc" / "cassandra"


def _marker_path(home: Path) -> Path:
    return home / "COMPLETE.json"


def _is_complete(home: Path, version: str) -> bool:
    """True when a previous fetch finished: the marker lists every jar and all are still there."""
    marker = _marker_path(home)
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    jars = recorded.get("jars", [])
    lib = home / "lib"
    return (
        recorded.get("version") == version
        and f"cassandra-all-{version}.jar" in jars
        and all((lib / jar).is_file() for jar in jars)
    )


def _require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CassandraHarnessError(
            "Maven ('mvn') is not on PATH; it is needed once to fetch cassandra-all from Maven Central "
            "(Debian: apt-get install maven)"
        )
    return mvn


def _run_maven_copy(version: str, lib_dir: Path, timeout_s: float) -> None:
    """Copy cassandra-all and its runtime dependencies into ``lib_dir`` (which must not exist yet)."""
    argv = [
        _require_maven(),
        "-B",
        "-q",
        "-f",
        str(DIST_POM),
        f"-Dcassandra.version={version}",
        f"-DoutputDirectory={lib_dir}",
        "dependency:copy-dependencies",
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CassandraHarnessError(f"Maven did not finish within {timeout_s:.0f}s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise CassandraHarnessError(
            f"Maven failed (exit {proc.returncode}) fetching cassandra-all {version}: {' '.join(argv)}\n{tail}"
        )
    if not (lib_dir / f"cassandra-all-{version}.jar").is_file():
        raise CassandraHarnessError(f"Maven succeeded but {lib_dir} has no cassandra-all-{version}.jar")


def ensure_distribution(version: str = DEFAULT_VERSION, *, timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """Return the distribution directory ``<cache>/<version>`` whose ``lib/`` holds the server jars.

    Fast when cached (a JSON read and a stat per jar). Otherwise resolves the jars with Maven from
    Maven Central into a temporary directory and renames it into place, so an interrupted fetch never
    leaves a half-filled ``lib/`` that looks complete.
    """
    home = cache_root() / version
    if _is_complete(home, version):
        return home
    with processes.file_lock(cache_root() / f".{version}.lock"):
        if _is_complete(home, version):  # another process finished while we waited for the lock
            return home
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=home))
        try:
            _run_maven_copy(version, staging / "lib", timeout_s)
            shutil.rmtree(home / "lib", ignore_errors=True)
            (staging / "lib").rename(home / "lib")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        jars = sorted(p.name for p in (home / "lib").glob("*.jar"))
        _marker_path(home).write_text(json.dumps({"version": version, "jars": jars}, indent=1))
    return home


def _jamm_agent(lib_dir: Path) -> Path:
    """Cassandra measures object sizes with jamm, loaded as a Java agent like bin/cassandra does."""
    agents = sorted(lib_dir.glob("jamm-*.jar"))
    if not agents:
        raise CassandraHarnessError(f"no jamm-*.jar in {lib_dir}; delete {lib_dir.parent} and fetch again")
    return agents[-1]


# --------------------------------------------------------------------------------------------------
# Java
# --------------------------------------------------------------------------------------------------


def _java_major(java_home: Path) -> int | None:
    """Major version from the JDK's ``release`` file, without starting a JVM."""
    release = java_home / "release"
    if not release.is_file():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java() -> Path:
    """The ``java`` binary of a Java 17 JDK.

    ``SEEDSVC_CASSANDRA_JAVA_HOME`` wins; then ``JAVA_HOME`` if it is Java 17 (CI may point JAVA_HOME
    at a newer JDK for other builds, which Cassandra 5.0 refuses); then well-known install paths; then
    whatever ``java`` on PATH resolves to.
    """
    candidates: list[Path] = []
    for var in ("SEEDSVC_CASSANDRA_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    candidates.extend(Path(p) for p in JAVA_HOME_CANDIDATES)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "java").is_file() and _java_major(home) == SUPPORTED_JAVA_MAJOR:
            return home / "bin" / "java"
    raise CassandraHarnessError(
        f"no Java {SUPPORTED_JAVA_MAJOR} JDK found (looked at {', '.join(map(str, candidates))}); "
        f"Cassandra 5.0 needs Java 11 or 17: install openjdk-17-jdk-headless or set SEEDSVC_CASSANDRA_JAVA_HOME"
    )


# --------------------------------------------------------------------------------------------------
# Configuration files
# --------------------------------------------------------------------------------------------------


def check_loopback(address: str) -> str:
    """Nodes may only ever bind to 127.0.0.0/8: refuse anything else before a JVM is started."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise CassandraHarnessError(f"not an IP address: {address!r}") from exc
    if not (ip.version == 4 and ip.is_loopback):
        raise CassandraHarnessError(f"{address} is not in 127.0.0.0/8; test nodes only run on loopback")
    return str(ip)


def render_cassandra_yaml(
    *,
    cluster_name: str,
    address: str,
    data_dir: Path,
    seed_provider_class: str,
    seed_provider_params: Mapping[str, str],
    num_tokens: int,
    snitch: str,
    overrides: Mapping[str, Any],
) -> str:
    """A minimal cassandra.yaml for a small test node; ``overrides`` replace or add top-level keys."""
    import yaml  # test dependency (PyYAML); imported here so `fetch` works without it

    config: dict[str, Any] = {
        "cluster_name": cluster_name,
        "num_tokens": num_tokens,
        # Balanced token allocation instead of random tokens, which matters with few vnodes.
        "allocate_tokens_for_local_replication_factor": 3,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "seed_provider": [{"class_name": seed_provider_class, "parameters": [dict(seed_provider_params)]}],
        "listen_address": address,
        "rpc_address": address,
        "storage_port": STORAGE_PORT,
        "native_transport_port": NATIVE_PORT,
        "start_native_transport": True,
        "endpoint_snitch": snitch,
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        "role_manager": "CassandraRoleManager",
        "network_authorizer": "AllowAllNetworkAuthorizer",
        "data_file_directories": [str(data_dir / "data")],
        "commitlog_directory": str(data_dir / "commitlog"),
        "hints_directory": str(data_dir / "hints"),
        "saved_caches_directory": str(data_dir / "saved_caches"),
        "cdc_raw_directory": str(data_dir / "cdc_raw"),
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        # Small segments: fewer bytes pre-allocated per node, and tests never write big mutations.
        "commitlog_segment_size": "8MiB",
        "disk_failure_policy": "stop",
        "commit_failure_policy": "stop",
        # Keep memory small: several nodes share a 2-core, few-GiB test machine.
        "memtable_heap_space": "64MiB",
        "memtable_offheap_space": "64MiB",
        "key_cache_size": "8MiB",
        "counter_cache_size": "0MiB",
        "file_cache_size": "32MiB",
        "prepared_statements_cache_size": "4MiB",
        "concurrent_reads": 4,
        "concurrent_writes": 4,
        "concurrent_counter_writes": 4,
        "concurrent_compactors": 1,
        "hinted_handoff_enabled": True,
    }
    config.update(overrides)
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def render_logback_xml(system_log: Path, levels: Mapping[str, str]) -> str:
    """INFO and above to ``system_log``; WARN and above also to stdout (captured in stdout.log)."""
    loggers = "\n".join(f'  <logger name="{name}" level="{level}"/>' for name, level in sorted(levels.items()))
    return f"""<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>{system_log}</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter">
      <level>WARN</level>
    </filter>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
{loggers}
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


def render_rackdc_properties(dc: str, rack: str) -> str:
    """Read by GossipingPropertyFileSnitch (named by ``-Dcassandra-rackdc.properties``); unused by SimpleSnitch."""
    return f"dc={dc}\nrack={rack}\nprefer_local=true\n"


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------

_PR_CAPBSET_DROP: Final = 24
_CAP_IPC_LOCK: Final = 14


def _forbid_memory_locking() -> None:
    """Make Cassandra's start-up ``mlockall`` fail harmlessly, as it does for any non-root user.

    As root it succeeds and faults in every mapped page (the whole initial heap and more), so RSS
    would measure the configuration instead of the node, and test behaviour would differ between
    root and non-root machines. A zero RLIMIT_MEMLOCK is ignored while the process holds
    CAP_IPC_LOCK, so that capability is also dropped from the bounding set the JVM is exec'd with.
    """
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    processes.PRCTL(_PR_CAPBSET_DROP, _CAP_IPC_LOCK, 0, 0, 0)  # fails (EPERM) when not root: nothing to drop


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the small race is acceptable for test JMX ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _tcp_connects(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _tail(path: Path, max_bytes: int = 6000) -> str:
    """The end of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no {path.name})"


class _LogFollower:
    """Reads a growing log file incrementally so polling stays cheap however long the log gets."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self._path = path
        self._offset = offset
        self._partial = b""

    def new_lines(self) -> list[str]:
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]


# --------------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------------


class CassandraNode:
    """One Cassandra JVM listening on ``address`` (storage 7000, CQL 9042, JMX on a free local port).

    Nothing happens until :meth:`start`; :meth:`wait_for_cql` then blocks until the node serves CQL.
    Files: ``data_dir/conf/{cassandra.yaml,logback.xml,cassandra-rackdc.properties}``,
    ``data_dir/{data,commitlog,hints,saved_caches,cdc_raw}``, ``data_dir/system.log`` (Cassandra's log)
    and ``data_dir/stdout.log`` (the JVM's stdout and stderr: crashes, WARN+ log lines).
    """

    def __init__(
        self,
        address: str,
        data_dir: Path | str,
        *,
        cluster_name: str = "seedsvc-test",
        seeds: Sequence[str] | None = None,
        seed_provider_class: str = SIMPLE_SEED_PROVIDER,
        seed_provider_params: Mapping[str, str] | None = None,
        extra_classpath: Sequence[Path | str] = (),
        system_properties: Mapping[str, str] | None = None,
        heap_min: str = "256m",
        heap_max: str = "512m",
        num_tokens: int = 16,
        snitch: str = "SimpleSnitch",
        dc: str = "datacenter1",
        rack: str = "rack1",
        yaml_overrides: Mapping[str, Any] | None = None,
        log_levels: Mapping[str, str] | None = None,
        extra_jvm_args: Sequence[str] = (),
        jmx: bool = True,
        version: str = DEFAULT_VERSION,
    ) -> None:
        """Describe a node.

        ``seeds`` feed SimpleSeedProvider's ``seeds`` parameter (default: this node alone) unless
        ``seed_provider_params`` is given, which is passed verbatim to ``seed_provider_class`` (e.g.
        ``io.seedsvc.cassandra.SidecarSeedProvider`` with ``url`` and ``cache_file``, its jar in
        ``extra_classpath``). ``system_properties`` are added as ``-Dkey=value`` after the test
        speed-ups in :data:`FAST_TEST_PROPERTIES`, so they can override them.
        """
        self.address = check_loopback(address)
        self.data_dir = Path(data_dir).resolve()
        self.cluster_name = cluster_name
        self.seed_provider_class = seed_provider_class
        self.seed_provider_params = dict(seed_provider_params or {"seeds": ",".join(seeds or [self.address])})
        self.extra_classpath = [Path(p).resolve() for p in extra_classpath]
        self.system_properties = {**FAST_TEST_PROPERTIES, **(system_properties or {})}
        self.heap_min, self.heap_max = heap_min, heap_max
        self.num_tokens = num_tokens
        self.snitch, self.dc, self.rack = snitch, dc, rack
        self.yaml_overrides = dict(yaml_overrides or {})
        self.log_levels = dict(log_levels or {})
        self.extra_jvm_args = list(extra_jvm_args)
        self.jmx = jmx
        self.version = version
        self.jmx_port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._started_at = 0.0
        # system.log is appended to across restarts: waits only look at what this start wrote.
        self._log_offset_at_start = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"CassandraNode({self.address}, pid={self.pid}, dir={self.data_dir})"

    # ---- paths -----------------------------------------------------------------------------------

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    @property
    def config_path(self) -> Path:
        return self.conf_dir / "cassandra.yaml"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "system.log"

    @property
    def stdout_path(self) -> Path:
        return self.data_dir / "stdout.log"

    # ---- process state ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def rss_bytes(self) -> int:
        """Resident set size of the JVM from /proc (0 once it has exited)."""
        return processes.rss_bytes(self.pid) if self.is_running() and self.pid else 0

    # ---- files -----------------------------------------------------------------------------------

    def write_config(self) -> None:
        """(Re)write conf/ from the current attributes; called by :meth:`start`."""
        for sub in ("conf", "data", "commitlog", "hints", "saved_caches", "cdc_raw"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            render_cassandra_yaml(
                cluster_name=self.cluster_name,
                address=self.address,
                data_dir=self.data_dir,
                seed_provider_class=self.seed_provider_class,
                seed_provider_params=self.seed_provider_params,
                num_tokens=self.num_tokens,
                snitch=self.snitch,
                overrides=self.yaml_overrides,
            )
        )
        (self.conf_dir / "logback.xml").write_text(render_logback_xml(self.log_path, self.log_levels))
        (self.conf_dir / "cassandra-rackdc.properties").write_text(render_rackdc_properties(self.dc, self.rack))

    def jvm_argv(self, java: Path, home: Path) -> list[str]:
        """The complete command line (without starting anything); handy for debugging by hand."""
        lib = home / "lib"
        # conf/ is not on the classpath: every file in it is named by a property instead, and a
        # non-empty directory on the classpath rules out class-data-sharing archives.
        classpath = os.pathsep.join([f"{lib}/*", *map(str, self.extra_classpath)])
        props = {
            "cassandra.config": self.config_path.as_uri(),
            "cassandra-rackdc.properties": (self.conf_dir / "cassandra-rackdc.properties").as_uri(),
            "logback.configurationFile": (self.conf_dir / "logback.xml").as_uri(),
            "cassandra.logdir": str(self.data_dir),
            "cassandra.storagedir": str(self.data_dir),
            **({"cassandra.jmx.local.port": str(self.jmx_port)} if self.jmx_port else {}),
            **self.system_properties,
        }
        return [
            str(java),
            f"-Xms{self.heap_min}",
            f"-Xmx{self.heap_max}",
            *SERVER_JVM_OPTIONS,
            *JAVA17_MODULE_OPTIONS,
            f"-javaagent:{_jamm_agent(lib)}",
            *(f"-D{key}={value}" for key, value in props.items()),
            *self.extra_jvm_args,
            "-cp",
            classpath,
            CASSANDRA_MAIN_CLASS,
        ]

    def _check_ports_free(self) -> None:
        for port in (STORAGE_PORT, NATIVE_PORT):
            if not _port_is_free(self.address, port):
                raise CassandraHarnessError(
                    f"{self.address}:{port} is already in use (a leftover Cassandra JVM? try "
                    f"`ss -ltnp | grep {self.address}`)"
                )

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration and launch the JVM; returns at once (see :meth:`wait_for_cql`)."""
        if self.is_running():
            raise CassandraHarnessError(f"{self} is already running")
        home = ensure_distribution(self.version)
        java = find_java()
        self._check_ports_free()
        self.jmx_port = free_port() if self.jmx else None
        self.write_config()
        argv = self.jvm_argv(java, home)
        (self.data_dir / "command.txt").write_text(" \\\n  ".join(argv) + "\n")
        self._stdout = self.stdout_path.open("ab")
        env = {**os.environ, "MALLOC_ARENA_MAX": "4"}  # as cassandra-env.sh: fewer glibc arenas, less RSS
        self.startup_seconds = None
        self._started_at = time.monotonic()
        self._log_offset_at_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env=env,
            start_new_session=True,  # own process group: stop()/kill() reach every child
            # Only prctl/setrlimit in the child: fork-safe.
            preexec_fn=processes.preexec_for_current_thread(also=_forbid_memory_locking),
        )
        processes.register(self._proc.pid)
        self._finalizer = weakref.finalize(self, processes.reap, self._proc.pid)

    def wait_for_cql(self, timeout: float = 180.0) -> float:
        """Block until the log says start-up is complete and ``address:9042`` accepts connections.

        Returns and records :attr:`startup_seconds` (from :meth:`start`). Raises
        :class:`CassandraHarnessError` with the log tail if the JVM exits or the time runs out.
        """
        deadline = time.monotonic() + timeout
        follower = _LogFollower(self.log_path, self._log_offset_at_start)
        logged_ready = False
        while True:
            self._raise_if_exited("while starting")
            logged_ready = logged_ready or any(STARTUP_COMPLETE_MARKER in ln for ln in follower.new_lines())
            if logged_ready and _tcp_connects(self.address, NATIVE_PORT):
                self.startup_seconds = time.monotonic() - self._started_at
                return self.startup_seconds
            if time.monotonic() >= deadline:
                raise CassandraHarnessError(f"{self} did not serve CQL within {timeout:.0f}s\n{self.diagnostics()}")
            time.sleep(POLL_INTERVAL_S)

    def serves_cql(self) -> bool:
        """Non-blocking readiness check: this run logged start-up complete and port 9042 accepts."""
        return (
            self.is_running()
            and bool(self.grep_log(re.escape(STARTUP_COMPLETE_MARKER), since_start=True))
            and _tcp_connects(self.address, NATIVE_PORT)
        )

    def wait_for_log(self, pattern: str, timeout: float = 60.0, *, only_new: bool = False) -> str:
        """Block until a ``system.log`` line matches the regex ``pattern``; return that line.

        Lines count from the latest :meth:`start`, or only those written after this call when
        ``only_new`` is true (to wait for the *next* occurrence of something already logged).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        follower = _LogFollower(self.log_path, self._log_offset_at_start)
        if only_new:
            follower.new_lines()
        while True:
            for line in follower.new_lines():
                if regex.search(line):
                    return line
            if time.monotonic() >= deadline:
                raise CassandraHarnessError(f"{self}: no log line matched {pattern!r} in {timeout:.0f}s")
            self._raise_if_exited(f"while waiting for {pattern!r}")
            time.sleep(POLL_INTERVAL_S)

    def terminate(self) -> None:
        """Send SIGTERM (Cassandra drains and exits) without waiting; :meth:`stop` finishes the job."""
        self._signal_group(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (Cassandra drains), then SIGKILL after ``timeout``; returns the exit status."""
        if self._proc is None:
            return None
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)
        return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the whole process group at once and reap it."""
        if self._proc is None:
            return None
        self._signal_group(signal.SIGKILL)
        code = self._proc.wait()
        processes.forget(self._proc.pid)
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        # Only while the JVM is unreaped: until we wait() for it its pid (and so the process group
        # id) cannot be reused, so the signal can never reach an unrelated process.
        if self._proc is not None and self._proc.poll() is None:
            processes.kill_group(self._proc.pid, sig)

    def _raise_if_exited(self, doing: str) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        raise CassandraHarnessError(f"{self} exited with status {self.returncode} {doing}\n{self.diagnostics()}")

    # ---- inspection ------------------------------------------------------------------------------

    def grep_log(self, pattern: str, *, include_stdout: bool = False, since_start: bool = False) -> list[str]:
        """Lines matching the regex ``pattern`` in ``system.log`` (and ``stdout.log`` if asked).

        The logs accumulate over restarts; ``since_start`` limits ``system.log`` to the latest start.
        """
        regex = re.compile(pattern)
        matches = [
            line
            for line in _LogFollower(self.log_path, self._log_offset_at_start if since_start else 0).new_lines()
            if regex.search(line)
        ]
        if include_stdout:
            matches.extend(line for line in _LogFollower(self.stdout_path).new_lines() if regex.search(line))
        return matches

    def diagnostics(self) -> str:
        """Log tails for failure messages."""
        return (
            f"--- {self.stdout_path} (tail) ---\n{_tail(self.stdout_path)}\n"
            f"--- {self.log_path} (tail) ---\n{_tail(self.log_path)}"
        )

    def nodetool(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``nodetool`` against this node over its local JMX port; returns stdout."""
        if not self.jmx_port:
            raise CassandraHarnessError(f"{self} was started without JMX (jmx=False)")
        home = ensure_distribution(self.version)
        argv = [
            str(find_java()),
            "-Xmx128m",
            "-XX:TieredStopAtLevel=1",  # a short-lived client: start-up is all that matters
            "-XX:+UseSerialGC",
            *JAVA17_MODULE_OPTIONS,
            "-cp",
            f"{home / 'lib'}/*",
            "-Dlogback.configurationFile=" + (self.conf_dir / "logback-tools.xml").as_uri(),
            NODETOOL_MAIN_CLASS,
            "-h",
            "127.0.0.1",
            "-p",
            str(self.jmx_port),
            *args,
        ]
        (self.conf_dir / "logback-tools.xml").write_text(
            '<configuration><root level="OFF"/></configuration>\n'  # keep nodetool's stdout clean
        )
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise CassandraHarnessError(f"nodetool {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout


class CassandraCluster:
    """Several nodes on ``addresses`` under ``base_dir``, seeded from ``seeds`` (default: the first).

    :meth:`start` starts them one after another, each waiting for CQL before the next one starts:
    the first node founds the cluster, the others bootstrap into it. Extra keyword arguments go to
    every :class:`CassandraNode`.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        base_dir: Path | str,
        *,
        seeds: Sequence[str] | None = None,
        **node_kwargs: Any,
    ) -> None:
        seed_list = list(seeds or addresses[:1])
        self.nodes = [CassandraNode(addr, Path(base_dir) / addr, seeds=seed_list, **node_kwargs) for addr in addresses]

    def __enter__(self) -> CassandraCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_per_node: float = 180.0) -> None:
        try:
            for node in self.nodes:
                node.start()
                node.wait_for_cql(timeout_per_node)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop all nodes together (each drains in parallel), killing any still running after ``timeout``."""
        for node in self.nodes:
            node.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.stop(max(0.0, deadline - time.monotonic()))

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _cmd_fetch(args: argparse.Namespace) -> int:
    started = time.monotonic()
    home = ensure_distribution(args.version)
    jars = len(list((home / "lib").glob("*.jar")))
    print(home)
    print(f"{jars} jars, ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_run(args: argparse.Namespace) -> int:
    # SIGTERM, and SIGINT even where a non-interactive shell started us with it ignored, stop the
    # node cleanly through the finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    node = CassandraNode(
        args.address, args.data_dir, seeds=args.seeds.split(",") if args.seeds else None, version=args.version
    )
    node.start()
    try:
        seconds = node.wait_for_cql(args.timeout)
        print(
            f"{node.address}:9042 up after {seconds:.1f}s, RSS {node.rss_bytes() / 2**20:.0f} MiB, "
            f"log {node.log_path}; Ctrl-C stops it",
            file=sys.stderr,
        )
        while node.is_running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m seedsvc_devcluster.cassandra",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--version", default=DEFAULT_VERSION, help="cassandra-all version")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", parents=[common], help="download the distribution if needed, print its directory")
    run = sub.add_parser("run", parents=[common], help="run one node in the foreground")
    run.add_argument("--address", default="127.0.0.1")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("--seeds", default="", help="comma-separated; default: the node itself")
    run.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        return {"fetch": _cmd_fetch, "run": _cmd_run}[args.command](args)
    except CassandraHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------------------------------
# The Python driver, as the tests use it
# --------------------------------------------------------------------------------------------------


class DriverUnavailable(CassandraHarnessError):
    """cassandra-driver is missing or cannot load an event-loop reactor."""


def driver(contact_points: Sequence[str]) -> Any:
    """A driver ``Cluster`` (not yet connected) for nodes of this harness.

    Raises :class:`DriverUnavailable` with the fix if the driver cannot be imported.
    """
    try:
        from cassandra.cluster import Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy
    except ImportError as exc:  # e.g. not installed, or no usable event-loop reactor
        raise DriverUnavailable(f"cassandra-driver is unusable ({exc}); run: pip install -e '.[test]'") from None
    # An explicit load-balancing policy: without one the driver emits a warning, which this
    # project's pytest configuration turns into an error.
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    return Cluster(
        contact_points=list(contact_points),
        port=NATIVE_PORT,
        execution_profiles={"default": profile},  # cassandra.cluster.EXEC_PROFILE_DEFAULT
        protocol_version=5,  # what Cassandra 5.0 speaks; saves two rounds of version negotiation
        connect_timeout=10,
    )

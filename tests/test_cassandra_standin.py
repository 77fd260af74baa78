"""The Cassandra stand-in image's context (seedsvc_devcluster/images/cassandra_standin), without containers.

A context for 5.0.9 is staged into a temporary directory; its tree then runs on this host the way the
container runs it: the UNCHANGED deploy/images/cassandra-entrypoint.sh renders the configuration from
the staged /etc/cassandra into a separate directory and execs the staged ``bin/cassandra -f``, with
the pod's MAX_HEAP_SIZE=4G and HEAP_NEWSIZE=800M, a real ``seedsvc serve`` sidecar (static source) and
the Java shim in lib/ as cassandra.Dockerfile puts it there. Only the paths differ from the pod:
/opt/cassandra, /etc/cassandra, /var/lib/cassandra, /var/log/cassandra and /tmp are temporary
directories, POD_IP is the loopback address 127.0.91.1, CQL binds to it instead of 0.0.0.0, and JMX
gets a free port instead of 7199 (several nodes share this host's 127.0.0.1). Run as root (as CI is)
the JVM holds CAP_IPC_LOCK, as the pod grants, so Cassandra's start-up mlockall succeeds here too.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from seedsvc_devcluster import ports, processes
from seedsvc_devcluster.cassandra import jvm
from seedsvc_devcluster.cassandra.distribution import ensure_distribution
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.java import find_java
from seedsvc_devcluster.cassandra.node import JMX_PORT_RANGE, STARTUP_COMPLETE_MARKER
from seedsvc_devcluster.cassandra.release import JAVA17_MODULE_OPTIONS, release_for
from seedsvc_devcluster.images.cassandra_standin import CONTAINERFILE, stage_context, staging_inputs
from seedsvc_devcluster.images.cassandra_standin.rendering import STANDIN_WAIT_PROPERTIES
from seedsvc_devcluster.paths import DEPLOY_DIR, SHIM_JAR
from seedsvc_devcluster.sidecar_process import SidecarProcess, clean_env
from tests.cassandra_checks import driver, poll

pytestmark = [pytest.mark.cassandra]

VERSION = "5.0.9"
ADDRESS = "127.0.91.1"  # 127.0.91.x: no other test uses it
CLUSTER_NAME = "seedsvc-standin"
ENTRYPOINT = DEPLOY_DIR / "images" / "cassandra-entrypoint.sh"
START_TIMEOUT_S = 400.0  # "does not hang" on a loaded 2-core machine, not a speed bound
STOP_TIMEOUT_S = 120.0
MAX_HEAP = "4G"  # deploy/components/cassandra-pod/pod.yaml
MEASUREMENTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    staged = tmp_path_factory.mktemp("standin") / "context"
    stage_context(VERSION, staged)
    return staged


def _options(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def _launcher_env(home: Path, **extra: str) -> dict[str, str]:
    java = find_java(17, release_for(VERSION).java_home_candidates)
    return clean_env({"JAVA_HOME": str(java.parent.parent), "CASSANDRA_HOME": str(home), **extra})


# --------------------------------------------------------------------------------------------------
# The staged context
# --------------------------------------------------------------------------------------------------


def test_containerfile_builds_from_java_base_and_copies_only_the_staged_tree(context: Path) -> None:
    text = (context / CONTAINERFILE).read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[:2] == ["ARG JAVA_BASE", "FROM ${JAVA_BASE}"]
    copies = [line.split() for line in instructions if line.startswith("COPY")]
    assert [words[-2] for words in copies] == ["opt/cassandra/", "etc/cassandra/"]
    assert all((context / words[-2]).is_dir() for words in copies)
    assert not re.search(r"apt-get|apt |dpkg|curl|wget", text), "the stand-in installs nothing"
    assert "cassandra:x:999:999:" in text and "cassandra:x:999:" in text
    assert re.search(r"chown 999:999 /var/lib/cassandra /var/log/cassandra", text)


def test_jars_are_the_harness_distribution_hard_linked_where_possible(context: Path) -> None:
    cached = ensure_distribution(VERSION) / "lib"
    staged = context / "opt" / "cassandra" / "lib"
    assert sorted(p.name for p in staged.iterdir()) == sorted(p.name for p in cached.glob("*.jar"))
    jar = f"cassandra-all-{VERSION}.jar"
    if (staged / jar).stat().st_dev == (cached / jar).stat().st_dev:
        assert (staged / jar).stat().st_ino == (cached / jar).stat().st_ino
    else:
        assert (staged / jar).read_bytes() == (cached / jar).read_bytes()


def test_jvm_options_are_the_harness_lists_with_only_its_shorter_waits(context: Path) -> None:
    conf = context / "etc" / "cassandra"
    server = [option for option in jvm.SERVER_JVM_OPTIONS if option != "-Dcassandra-foreground=yes"]
    waits = [f"-D{name}={jvm.FAST_TEST_PROPERTIES[name]}" for name in STANDIN_WAIT_PROPERTIES]
    assert _options(conf / "jvm-server.options") == server + waits
    assert _options(conf / "jvm17-server.options") == list(JAVA17_MODULE_OPTIONS)
    everything = "\n".join(p.read_text() for p in [*conf.iterdir(), *(context / "opt/cassandra/bin").iterdir()])
    for name in set(jvm.FAST_TEST_PROPERTIES) - set(STANDIN_WAIT_PROPERTIES):
        assert name not in everything, f"{name} changes behaviour; the stand-in must not set it"


def test_default_configuration_keeps_data_under_var_lib_cassandra(context: Path) -> None:
    config = yaml.safe_load((context / "etc" / "cassandra" / "cassandra.yaml").read_text())
    assert config["data_file_directories"] == ["/var/lib/cassandra/data"]
    for key in ("commitlog_directory", "hints_directory", "saved_caches_directory", "cdc_raw_directory"):
        assert config[key].startswith("/var/lib/cassandra/"), key
    assert config["seed_provider"][0]["parameters"] == [{"seeds": "127.0.0.1:7000"}]
    rackdc = (context / "etc" / "cassandra" / "cassandra-rackdc.properties").read_text()
    assert rackdc.startswith("dc=dc1\nrack=rack1\n")


def test_staging_inputs_name_the_harness_modules_the_context_is_made_from() -> None:
    inputs = staging_inputs()
    assert Path(jvm.__file__).resolve() in inputs  # a new JVM option must change an image cache key
    assert {"cassandra", "nodetool", "rendering.py", "release.py", "cassandra_yaml.py", "pom.xml"} <= {
        path.name for path in inputs
    }
    assert all(path.is_file() for path in inputs)


def test_a_line_whose_nodetool_needs_another_java_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CassandraHarnessError, match=r"4\.1\.10 runs on Java 11 but its nodetool on Java 17"):
        stage_context("4.1.10", tmp_path / "c")


def test_a_non_empty_context_is_refused(tmp_path: Path) -> None:
    (tmp_path / "leftover").write_text("")
    with pytest.raises(CassandraHarnessError, match="is not empty"):
        stage_context(VERSION, tmp_path)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"MAX_HEAP_SIZE": "4X"}, "invalid MAX_HEAP_SIZE=4X"),
        ({"MAX_HEAP_SIZE": "4G", "HEAP_NEWSIZE": "lots"}, "invalid HEAP_NEWSIZE=lots"),
        ({"SEEDSVC_MIN_HEAP_SIZE": "-1"}, "invalid SEEDSVC_MIN_HEAP_SIZE=-1"),
    ],
)
def test_launcher_refuses_a_bad_size_with_status_2_naming_it(
    context: Path, setting: dict[str, str], named: str
) -> None:
    home = context / "opt" / "cassandra"
    env = _launcher_env(home, CASSANDRA_CONF=str(context / "etc" / "cassandra"), **setting)
    done = subprocess.run([home / "bin" / "cassandra", "-f", "-R"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()] and named in done.stderr, done.stderr


def _ram_mib() -> int:
    meminfo = Path("/proc/meminfo").read_text()
    return int(re.findall(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)[0]) // 1024


@pytest.mark.parametrize(
    ("setting", "initial_mib", "max_mib"),
    [
        ({"MAX_HEAP_SIZE": "4G", "HEAP_NEWSIZE": "800M"}, 256, 4096),
        ({"MAX_HEAP_SIZE": "128M"}, 128, 128),  # the initial heap never exceeds the maximum
        ({"MAX_HEAP_SIZE": "1G", "SEEDSVC_MIN_HEAP_SIZE": "512m"}, 512, 1024),
        # cassandra-env.sh's default: max(min(RAM/2, 1G), min(RAM/4, 8G))
        ({}, 256, max(min(_ram_mib() // 2, 1024), min(_ram_mib() // 4, 8192))),
    ],
)
def test_launcher_sizes_the_heap(context: Path, setting: dict[str, str], initial_mib: int, max_mib: int) -> None:
    """The launcher's real java command line, ended early by ``-version`` in JVM_EXTRA_OPTS."""
    home = context / "opt" / "cassandra"
    env = _launcher_env(
        home,
        CASSANDRA_CONF=str(context / "etc" / "cassandra"),
        JVM_EXTRA_OPTS="-XX:+PrintCommandLineFlags -version",
        **setting,
    )
    done = subprocess.run([home / "bin" / "cassandra", "-f", "-R"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    flags = dict(re.findall(r"-XX:(\w+)=(\d+)", done.stdout))
    assert (int(flags["InitialHeapSize"]) // 2**20, int(flags["MaxHeapSize"]) // 2**20) == (initial_mib, max_mib)


def test_launcher_refuses_an_unknown_option(context: Path) -> None:
    home = context / "opt" / "cassandra"
    done = subprocess.run([home / "bin" / "cassandra", "-x"], env=_launcher_env(home), capture_output=True, text=True)
    assert done.returncode == 2 and "unknown option -x" in done.stderr, done.stderr


# --------------------------------------------------------------------------------------------------
# The staged tree as a running node, started by the unchanged entrypoint
# --------------------------------------------------------------------------------------------------


@dataclass
class StandinNode:
    root: Path
    env: dict[str, str]
    child: processes.ChildProcess
    sidecar: SidecarProcess
    launched_at: float

    @property
    def pid(self) -> int:
        assert self.child.pid is not None
        return self.child.pid

    @property
    def system_log(self) -> Path:
        return self.root / "var-log-cassandra" / "system.log"

    def log_text(self) -> str:
        return self.system_log.read_text() if self.system_log.exists() else ""

    def nodetool(self, *args: str) -> str:
        argv = [str(self.root / "opt" / "cassandra" / "bin" / "nodetool"), *args]
        # NodeTool appends to ~/.cassandra/nodetool.history: this node's directory, not the machine's home.
        env = {**self.env, "JAVA_TOOL_OPTIONS": f"-Duser.home={self.root}"}
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def serves_cql(self) -> bool:
        self.child.check_alive()
        return STARTUP_COMPLETE_MARKER in self.log_text() and ports.tcp_connects(ADDRESS, 9042)


def _jmx_port() -> int:
    """Below the ephemeral range, as the harness picks its nodes' JMX ports (see node.JMX_PORT_RANGE)."""
    for _ in range(200):
        port = random.randint(*JMX_PORT_RANGE)
        if ports.port_is_free("127.0.0.1", port):
            return port
    pytest.fail(f"no free port in {JMX_PORT_RANGE} on 127.0.0.1")


def _pod_tree(context: Path, root: Path) -> tuple[Path, Path]:
    """The image's /opt/cassandra (plus the shim, as cassandra.Dockerfile adds it) and /etc/cassandra
    under ``root``; the template's /var/lib/cassandra paths point into ``root`` instead."""
    home, template = root / "opt" / "cassandra", root / "etc" / "cassandra"
    shutil.copytree(context / "opt" / "cassandra", home, copy_function=os.link)
    if not SHIM_JAR.is_file():
        pytest.fail(f"{SHIM_JAR} is missing: build it with `cd java-shim && mvn -B -q -ntp package -DskipTests`")
    shutil.copy2(SHIM_JAR, home / "lib" / SHIM_JAR.name)
    shutil.copytree(context / "etc" / "cassandra", template)
    yaml_path = template / "cassandra.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("/var/lib/cassandra", str(root / "var-lib-cassandra")))
    return home, template


@pytest.fixture(scope="module")
def node(context: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinNode]:
    if not ports.port_is_free(ADDRESS, 9042):
        pytest.fail(f"{ADDRESS}:9042 is taken (a leftover JVM? `ss -ltnp | grep {ADDRESS}`)")
    root = tmp_path_factory.mktemp("standin-pod")
    home, template = _pod_tree(context, root)
    for directory in ("var-lib-cassandra", "var-log-cassandra", "tmp", "run-cassandra"):
        (root / directory).mkdir()
    sidecar = SidecarProcess(
        "standin-sidecar",
        clean_env(
            {
                "SEEDSVC_SOURCE": "static",
                "CASSANDRA_SEEDS": ADDRESS,
                "POD_IP": ADDRESS,
                "POD_NAME": "cassandra-0",
                "SEEDSVC_HOST": "127.0.0.1",
                "SEEDSVC_PORT": "0",
            }
        ),
        root / "sidecar.log",
    ).start()
    fast = " ".join(f"-D{key}={value}" for key, value in jvm.FAST_TEST_PROPERTIES.items())
    env = _launcher_env(
        home,
        PATH=f"{home / 'bin'}:{os.environ['PATH']}",
        CASSANDRA_CONF=str(root / "run-cassandra" / "conf"),
        SEEDSVC_CONF_TEMPLATE=str(template),
        SEEDSVC_CONF_OVERRIDES=str(root / "no-overrides"),
        CASSANDRA_LOG_DIR=str(root / "var-log-cassandra"),
        cassandra_storagedir=str(root / "var-lib-cassandra"),
        TMPDIR=str(root / "tmp"),
        JMX_PORT=str(_jmx_port()),
        POD_IP=ADDRESS,
        CASSANDRA_RPC_ADDRESS=ADDRESS,  # the pod's 0.0.0.0 would be every interface of this host
        CASSANDRA_CLUSTER_NAME=CLUSTER_NAME,
        CASSANDRA_DC="dc1",
        CASSANDRA_RACK="rack1",
        CASSANDRA_NUM_TOKENS="16",
        MAX_HEAP_SIZE=MAX_HEAP,
        HEAP_NEWSIZE="800M",
        SEEDSVC_SHIM_URL=sidecar.seeds_url,
        SEEDSVC_SHIM_CACHE_FILE=str(root / "var-lib-cassandra" / "seedsvc-seeds.cache"),
        JVM_EXTRA_OPTS=fast,  # the harness's waits for big clusters, shortened through the pod's own variable
    )
    # As the container's CMD, plus -R when this test runs as root (the pod runs as 999).
    argv = ["bash", str(ENTRYPOINT), *(["-R"] if os.geteuid() == 0 else [])]
    launched_at = time.monotonic()
    child = processes.ChildProcess("standin-cassandra", argv, root / "stdout.log", cwd=root, env=env).start()
    standin = StandinNode(root, env, child, sidecar, launched_at)
    try:
        yield standin
    finally:
        child.stop(STOP_TIMEOUT_S)
        sidecar.stop()
        print(f"\nCassandra stand-in {VERSION} measurements: {MEASUREMENTS}")


def test_the_entrypoint_starts_the_staged_tree_and_cql_opens(node: StandinNode) -> None:
    poll(node.serves_cql, START_TIMEOUT_S, f"the stand-in node to serve CQL on {ADDRESS}", 1.0)
    MEASUREMENTS["launch_to_cql_s"] = round(time.monotonic() - node.launched_at, 1)
    cluster = driver([ADDRESS])
    try:
        local = cluster.connect().execute("SELECT cluster_name, release_version, data_center FROM system.local").one()
    finally:
        cluster.shutdown()
    assert (local.cluster_name, local.release_version, local.data_center) == (CLUSTER_NAME, VERSION, "dc1")
    rendered = yaml.safe_load((node.root / "run-cassandra" / "conf" / "cassandra.yaml").read_text())
    assert rendered["seed_provider"][0]["class_name"] == "io.seedsvc.cassandra.SidecarSeedProvider"
    assert re.search(rf"Using seeds \[{re.escape(ADDRESS)}\] from the sidecar", node.log_text())


def test_the_launcher_execs_the_jvm_with_the_pod_heap_and_its_server_options(node: StandinNode) -> None:
    # exec all the way down: the entrypoint's pid is the JVM's, so a container's SIGTERM reaches it.
    assert Path(os.readlink(f"/proc/{node.pid}/exe")).name == "java"
    argv = Path(f"/proc/{node.pid}/cmdline").read_text().rstrip("\0").split("\0")
    assert "-Xmx4096M" in argv and "-Xms256M" in argv, argv
    assert "-Dcassandra-foreground=yes" in argv and "-XX:+UseG1GC" in argv
    assert argv[-1] == jvm.CASSANDRA_MAIN_CLASS
    assert argv.index("-Dcassandra.ring_delay_ms=5000") > argv.index("-XX:+UseG1GC")  # JVM_EXTRA_OPTS after


def test_nodetool_shows_the_node_up_and_normal(node: StandinNode) -> None:
    poll(node.serves_cql, START_TIMEOUT_S, "CQL", 1.0)
    status = node.nodetool("status")
    assert re.search(rf"^UN\s+{re.escape(ADDRESS)}\s", status, re.MULTILINE), status


def test_rss_follows_use_not_max_heap_even_with_mlockall(node: StandinNode) -> None:
    poll(node.serves_cql, START_TIMEOUT_S, "CQL", 1.0)
    rss_mib = processes.rss_bytes(node.pid) / 2**20
    MEASUREMENTS["rss_mib"] = round(rss_mib)
    if os.geteuid() == 0:  # CAP_IPC_LOCK, as the pod's securityContext adds it
        assert "JNA mlockall successful" in node.log_text()
        locked_kib = int(re.findall(r"VmLck:\s+(\d+)", Path(f"/proc/{node.pid}/status").read_text())[0])
        MEASUREMENTS["locked_mib"] = round(locked_kib / 1024)
    # MAX_HEAP_SIZE is 4G; an -Xms4G heap locked at start-up would put RSS above 4096 MiB.
    assert rss_mib < 2048, rss_mib


def test_prestop_drain_then_sigterm_stops_the_node(node: StandinNode) -> None:
    """As the kubelet ends the pod: the preStop hook's ``nodetool drain``, then SIGTERM to PID 1.

    Last in this module: it ends the node the tests above use.
    """
    poll(node.serves_cql, START_TIMEOUT_S, "CQL", 1.0)
    node.nodetool("drain")
    assert "DRAINED" in node.log_text()
    process = node.child.process
    assert process is not None
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # the pid alone, as a container runtime signals PID 1
    code = process.wait(STOP_TIMEOUT_S)
    MEASUREMENTS["sigterm_to_exit_s"] = round(time.monotonic() - started, 1)
    assert code == 128 + signal.SIGTERM, code
    assert not ports.tcp_connects(ADDRESS, 9042)

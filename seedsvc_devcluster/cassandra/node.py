"""One Cassandra JVM on a loopback address: its files, its process, and waiting for it to serve CQL."""

from __future__ import annotations

import contextlib
import ipaddress
import random
import re
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from seedsvc_devcluster import ports, processes
from seedsvc_devcluster.cassandra import jvm
from seedsvc_devcluster.cassandra.cassandra_yaml import (
    NATIVE_PORT,
    SIMPLE_SEED_PROVIDER,
    STORAGE_PORT,
    render_cassandra_yaml,
)
from seedsvc_devcluster.cassandra.config_files import render_logback_xml, render_rackdc_properties
from seedsvc_devcluster.cassandra.distribution import ensure_distribution
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.java import find_java
from seedsvc_devcluster.cassandra.logs import LogFollower, tail
from seedsvc_devcluster.cassandra.nodetool import run_nodetool
from seedsvc_devcluster.cassandra.release import DEFAULT_VERSION, Release, release_for

# Cassandra drains on SIGTERM (flushes memtables, stops gossip); small test nodes finish in seconds.
STOP_TIMEOUT_S: Final = 30.0
POLL_INTERVAL_S: Final = 0.2
# Written by CassandraDaemon.start() once the native transport is up (Cassandra 4.0+).
STARTUP_COMPLETE_MARKER: Final = "Startup complete"


def check_loopback(address: str) -> str:
    """Nodes may only ever bind to 127.0.0.0/8: refuse anything else before a JVM is started."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise CassandraHarnessError(f"not an IP address: {address!r}") from exc
    if not (ip.version == 4 and ip.is_loopback):
        raise CassandraHarnessError(f"{address} is not in 127.0.0.0/8; test nodes only run on loopback")
    return str(ip)


# JMX ports come from below the kernel's ephemeral range (32768-60999 by default): a port picked inside
# it can be taken by any process's outgoing connection in the seconds before the JVM binds it, which
# stopped nodes with "BindException: Address already in use" in maybeInitJmx on a busy shared machine.
JMX_PORT_RANGE: Final = (20000, 32767)


def _jmx_port() -> int:
    """A free loopback port in :data:`JMX_PORT_RANGE`, never one handed out to another node of this process."""
    for _ in range(200):
        port = random.randint(*JMX_PORT_RANGE)
        with _jmx_ports_lock:
            if port not in _jmx_ports_handed_out and ports.port_is_free("127.0.0.1", port):
                _jmx_ports_handed_out.add(port)
                return port
    raise CassandraHarnessError(f"no free JMX port in {JMX_PORT_RANGE} on 127.0.0.1 after 200 tries")


_jmx_ports_handed_out: set[int] = set()
_jmx_ports_lock = threading.Lock()


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
        speed-ups in :data:`.jvm.FAST_TEST_PROPERTIES`, so they can override them.
        """
        self.address = check_loopback(address)
        self.data_dir = Path(data_dir).resolve()
        self.cluster_name = cluster_name
        self.seed_provider_class = seed_provider_class
        self.seed_provider_params = dict(seed_provider_params or {"seeds": ",".join(seeds or [self.address])})
        self.extra_classpath = [Path(p).resolve() for p in extra_classpath]
        self.system_properties = {**jvm.FAST_TEST_PROPERTIES, **(system_properties or {})}
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
                legacy_keys=self.release.legacy_yaml_keys,
            )
        )
        (self.conf_dir / "logback.xml").write_text(render_logback_xml(self.log_path, self.log_levels))
        (self.conf_dir / "cassandra-rackdc.properties").write_text(render_rackdc_properties(self.dc, self.rack))

    @property
    def release(self) -> Release:
        return release_for(self.version)

    def jvm_argv(self, java: Path, home: Path) -> list[str]:
        """The complete command line (without starting anything); handy for debugging by hand."""
        props = {
            "cassandra.config": self.config_path.as_uri(),
            "cassandra-rackdc.properties": (self.conf_dir / "cassandra-rackdc.properties").as_uri(),
            "logback.configurationFile": (self.conf_dir / "logback.xml").as_uri(),
            "cassandra.logdir": str(self.data_dir),
            "cassandra.storagedir": str(self.data_dir),
            **({"cassandra.jmx.local.port": str(self.jmx_port)} if self.jmx_port else {}),
            **self.system_properties,
        }
        return jvm.server_argv(
            java=java,
            home=home,
            release=self.release,
            heap=(self.heap_min, self.heap_max),
            properties=props,
            extra_classpath=self.extra_classpath,
            extra_jvm_args=self.extra_jvm_args,
        )

    def _check_ports_free(self) -> None:
        for port in (STORAGE_PORT, NATIVE_PORT):
            if not ports.port_is_free(self.address, port):
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
        java = self._java()
        self._check_ports_free()
        self.jmx_port = _jmx_port() if self.jmx else None
        self.write_config()
        argv = self.jvm_argv(java, home)
        (self.data_dir / "command.txt").write_text(" \\\n  ".join(argv) + "\n")
        self._stdout = self.stdout_path.open("ab")
        self.startup_seconds = None
        self._started_at = time.monotonic()
        self._log_offset_at_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env=jvm.server_environment(),
            start_new_session=True,  # own process group: stop()/kill() reach every child
            # Only prctl/setrlimit in the child: fork-safe.
            preexec_fn=processes.preexec_for_current_thread(also=jvm.forbid_memory_locking),
        )
        processes.register(self._proc.pid)
        self._finalizer = weakref.finalize(self, processes.reap, self._proc.pid)

    def wait_for_cql(self, timeout: float = 180.0) -> float:
        """Block until the log says start-up is complete and ``address:9042`` accepts connections.

        Returns and records :attr:`startup_seconds` (from :meth:`start`). Raises
        :class:`CassandraHarnessError` with the log tail if the JVM exits or the time runs out.
        """
        deadline = time.monotonic() + timeout
        follower = LogFollower(self.log_path, self._log_offset_at_start)
        logged_ready = False
        while True:
            self._raise_if_exited("while starting")
            logged_ready = logged_ready or any(STARTUP_COMPLETE_MARKER in ln for ln in follower.new_lines())
            if logged_ready and ports.tcp_connects(self.address, NATIVE_PORT):
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
            and ports.tcp_connects(self.address, NATIVE_PORT)
        )

    def wait_for_log(self, pattern: str, timeout: float = 60.0, *, only_new: bool = False) -> str:
        """Block until a ``system.log`` line matches the regex ``pattern``; return that line.

        Lines count from the latest :meth:`start`, or only those written after this call when
        ``only_new`` is true (to wait for the *next* occurrence of something already logged).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        follower = LogFollower(self.log_path, self._log_offset_at_start)
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
            for line in LogFollower(self.log_path, self._log_offset_at_start if since_start else 0).new_lines()
            if regex.search(line)
        ]
        if include_stdout:
            matches.extend(line for line in LogFollower(self.stdout_path).new_lines() if regex.search(line))
        return matches

    def diagnostics(self) -> str:
        """Log tails for failure messages."""
        return (
            f"--- {self.stdout_path} (tail) ---\n{tail(self.stdout_path)}\n"
            f"--- {self.log_path} (tail) ---\n{tail(self.log_path)}"
        )

    def nodetool(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``nodetool`` against this node over its local JMX port; returns stdout."""
        if not self.jmx_port:
            raise CassandraHarnessError(f"{self} was started without JMX (jmx=False)")
        return run_nodetool(
            java=find_java(self.release.tool_java_major, self.release.tool_java_home_candidates),
            home=ensure_distribution(self.version),
            release=self.release,
            jmx_port=self.jmx_port,
            conf_dir=self.conf_dir,
            args=args,
            timeout=timeout,
        )

    def _java(self) -> Path:
        return find_java(self.release.java_major, self.release.java_home_candidates)

"""Shared plumbing for the benchmarks: statistics, machine facts, the cluster, sidecar processes, a
byte-counting TCP proxy in front of the API server and the API server's own request counters.

Everything talks to 127.0.0.0/8 only, and every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from seedsvc_devcluster import build
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.polling import poll
from seedsvc_devcluster.ports import free_port, tcp_connects
from seedsvc_devcluster.sidecar_process import SidecarProcess, clean_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
READY_ANNOTATION = "kubelet.seedsvc.test/ready"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
        "mean": statistics.fmean(values) if values else math.nan,
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    if value < 1:
        return f"{value * 1000:.0f} µs"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def secs(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.1f} s"


def mib(size: float) -> str:
    return "n/a" if math.isnan(size) else f"{size / 2**20:.1f} MiB"


def human_bytes(size: float) -> str:
    if math.isnan(size):
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the machine ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, StopIteration):
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        memory = f"{kib / 2**20:.1f} GiB"
    load = "unknown"
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "seedsvc code": code_version(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load average at start": load,
    }


def code_version() -> str:
    """The commit the measured code is at, marked when seedsvc/ or sidecar/ differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "seedsvc", "sidecar"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}" + (" + uncommitted changes in seedsvc/ or sidecar/" if dirty else "")


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


# --- /proc ------------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# --- the API server's own counters -------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str, names: set[str]) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None or match["name"] not in names:
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        samples.append((match["name"], labels, float(match["value"])))
    return samples


def request_counts(plane: ControlPlane, *, resource: str, scope: str = "namespace") -> dict[str, float]:
    """apiserver_request_total by verb for one resource and scope (counted when a request ends)."""
    text = plane.api("GET", "/metrics", raw=True)
    counts: dict[str, float] = {}
    for _, labels, value in parse_metrics(text, {"apiserver_request_total"}):
        if labels.get("resource") == resource and labels.get("scope") == scope and not labels.get("subresource"):
            counts[labels["verb"]] = counts.get(labels["verb"], 0.0) + value
    return counts


def count_delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {verb: after.get(verb, 0.0) - before.get(verb, 0.0) for verb in set(after) | set(before)
            if after.get(verb, 0.0) - before.get(verb, 0.0)}


# --- the cluster ----------------------------------------------------------------------------------


class Cluster(LocalCluster):
    """One control plane (realistic CoreDNS caching) plus the kubelet stand-in, for the whole suite."""

    def __init__(self, workdir: Path) -> None:
        # kubeadm's default Corefile: `cache 30` and the kubernetes plugin's `ttl 30`.
        options = ControlPlaneOptions(coredns_cache_s=30, coredns_ttl_s=30)
        super().__init__(workdir, options, bin_dir=build.ensure_built())

    def start(self) -> Cluster:
        super().start()
        return self

    def namespace(self, name: str, *, rbac: bool = True, endpoints_rbac: bool = False) -> Path | None:
        """Create a namespace with the sidecar's ServiceAccount and Role; returns its in-cluster files."""
        self.create_namespace(name)
        return self.grant_seedsvc(name, endpoints=endpoints_rbac) if rbac else None


def pod_status_patch(ready: bool) -> dict[str, Any]:
    """What a kubelet writes when a readiness probe flips: the Ready and ContainersReady conditions."""
    flag = "True" if ready else "False"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"status": {"conditions": [
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
    ]}}


class AsyncApi:
    """Admin writes to the API server from asyncio (one keep-alive session)."""

    def __init__(self, cluster: Cluster) -> None:
        self._server = cluster.plane.server
        self._ssl = cluster.admin_ssl()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncApi:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json") -> Any:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=15)
        data = None if body is None else json.dumps(body)
        async with self._session.request(method, self._server + path, data=data, timeout=timeout,
                                         headers={"Content-Type": content_type}) as response:
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path} -> {response.status}: {text[:300]}")
            return json.loads(text) if text else None

    async def set_pod_ready(self, namespace: str, pod: str, ready: bool) -> None:
        await self.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod}/status", pod_status_patch(ready),
                           content_type="application/strategic-merge-patch+json")


# --- sidecar processes --------------------------------------------------------------------------------


@dataclass
class Sidecar:
    """A real `python -m seedsvc serve` on 127.0.0.1 at a port chosen here (see :class:`SidecarProcess`)."""

    process: SidecarProcess

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        pid = self.process.pid
        assert pid is not None, f"sidecar {self.name} was never launched"
        return pid

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes, Mapping[str, str]]:
        answer = self.process.get(path, timeout=timeout)
        if answer.status == 0:
            raise OSError(answer.body)
        return answer.status, answer.body.encode(), answer.headers

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.01) -> float:
        """Seconds from process start to the first /readyz 200 (polled every `interval`)."""
        return self.process.wait_ready(timeout, interval)

    def stop(self) -> None:
        self.process.stop()


def start_sidecar(name: str, env: Mapping[str, str], log_dir: Path) -> Sidecar:
    """Launch (do not wait: ``wait_ready`` times the start-up) a sidecar logging warnings only."""
    settings = {"SEEDSVC_HOST": LOOPBACK, "SEEDSVC_PORT": str(free_port()), "SEEDSVC_LOG_LEVEL": "warning"}
    process = SidecarProcess(name, clean_env({**settings, **env}), log_dir / f"sidecar-{name}.log")
    return Sidecar(process.launch())


def kubernetes_env(cluster: Cluster, namespace: str, sa_dir: Path, service: str, *,
                   api_port: int | None = None, **extra: str) -> dict[str, str]:
    env = cluster.plane.incluster_env()
    if api_port is not None:
        env["KUBERNETES_SERVICE_PORT"] = str(api_port)
    return {**env, "SEEDSVC_SERVICEACCOUNT_DIR": str(sa_dir), "POD_NAMESPACE": namespace,
            "CASSANDRA_SERVICE": service, "SEEDSVC_SOURCE": "kubernetes", **extra}


@contextlib.contextmanager
def sidecars_stopped(sidecars: list[Sidecar]) -> Iterator[list[Sidecar]]:
    try:
        yield sidecars
    finally:
        for sidecar in sidecars:
            sidecar.stop()


class LongPoller:
    """Watches a sidecar's /seeds with long-polls: each answer arrives the moment the list changes."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url
        self.generation = 0
        self.seeds: tuple[str, ...] = ()

    async def current(self) -> tuple[str, ...]:
        async with self._session.get(self._url + "/seeds", timeout=aiohttp.ClientTimeout(total=10)) as response:
            body = await response.text()
            self.generation = int(response.headers.get("X-Seedsvc-Generation", "0"))
            self.seeds = tuple(body.split(",")) if response.status == 200 else ()
        return self.seeds

    async def next_change(self, timeout: float) -> tuple[float, tuple[str, ...]]:
        """Wait (bounded) for the generation to move past the last one seen; (arrival time, list)."""
        wait = min(300.0, max(1.0, timeout))
        url = f"{self._url}/seeds?wait={wait:.0f}&generation={self.generation}"
        async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=wait + 10)) as response:
            body = await response.text()
            arrived = time.monotonic()
            self.generation = int(response.headers.get("X-Seedsvc-Generation", "0"))
            self.seeds = tuple(body.split(",")) if response.status == 200 else ()
        return arrived, self.seeds

    async def until(self, predicate: Any, timeout: float) -> tuple[float, tuple[str, ...]]:
        """Long-poll until `predicate(seeds)` holds; returns when the first such answer arrived."""
        deadline = time.monotonic() + timeout
        if predicate(self.seeds):
            return time.monotonic(), self.seeds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self._url}: seeds never matched; last {self.seeds}")
            arrived, seeds = await self.next_change(remaining)
            if predicate(seeds):
                return arrived, seeds


# --- a byte-counting TCP proxy ----------------------------------------------------------------------


class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of the API server that counts connections and bytes each way.

    TLS passes through untouched (the API server certificate names 127.0.0.1), so these are the bytes a
    client really moves over the network, TLS overhead included. It runs its own event loop in a
    thread so that what it measures does not share a loop with what it counts.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.connections = 0
        self.to_server = 0
        self.to_client = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("counting proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, LOOPBACK, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, TimeoutError):
            writer.close()
            return
        self._writers.add(up_writer)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await source.read(65536):
                    if upstream:
                        self.to_server += len(data)
                    else:
                        self.to_client += len(data)
                    sink.write(data)
                    await sink.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    sink.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    def snapshot(self) -> tuple[int, int, int]:
        return self.connections, self.to_server, self.to_client

    def stop(self) -> None:
        def shutdown() -> None:
            # Closing every socket ends every pump on its own; cancelling the handler tasks instead
            # makes asyncio's stream callbacks log a traceback each.
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()
            self._loop.call_later(0.3, self._loop.stop)

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=5)


def api_target(cluster: Cluster) -> tuple[str, int]:
    host, port = cluster.plane.server.removeprefix("https://").rsplit(":", 1)
    return host, int(port)


def wait_port(port: int, timeout: float = 10.0) -> None:
    poll(lambda: tcp_connects(LOOPBACK, port, 0.5), timeout=timeout, what=f"a listener on {LOOPBACK}:{port}",
         interval=0.02)

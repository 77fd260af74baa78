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
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from seedsvc_devcluster import build
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions, free_port
from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions

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


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def hwm_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


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


@dataclass
class Cluster:
    """One control plane (realistic CoreDNS caching) plus the kubelet stand-in, for the whole suite."""

    workdir: Path
    plane: ControlPlane = field(init=False)
    kubelet: Kubelet = field(init=False)
    startup_seconds: float = 0.0

    def start(self) -> Cluster:
        # kubeadm's default Corefile: `cache 30` and the kubernetes plugin's `ttl 30`.
        options = ControlPlaneOptions(coredns_cache_s=30, coredns_ttl_s=30)
        self.plane = ControlPlane(self.workdir / "controlplane", options, bin_dir=build.ensure_built())
        self.plane.start()
        self.startup_seconds = self.plane.startup_seconds
        self.kubelet = Kubelet.from_kubeconfig(self.plane.kubeconfig, KubeletOptions()).start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.kubelet.stop()
        self.plane.stop()

    def admin_ssl(self) -> ssl.SSLContext:
        pki = self.plane.directory / "pki"
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return context

    def apply(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        version = obj["apiVersion"]
        prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
        plural = {"StatefulSet": "statefulsets", "RoleBinding": "rolebindings", "EndpointSlice": "endpointslices"}.get(
            obj["kind"], obj["kind"].lower() + "s")
        return self.plane.api("POST", f"{prefix}/namespaces/{namespace}/{plural}", obj)  # type: ignore[no-any-return]

    def namespace(self, name: str, *, rbac: bool = True, endpoints_rbac: bool = False) -> Path | None:
        """Create a namespace with the sidecar's ServiceAccount and Role; returns its in-cluster files."""
        self.plane.api("POST", "/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        deadline = time.monotonic() + 30
        while not self.plane.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"namespace {name} never got its default ServiceAccount")
            time.sleep(0.1)
        if rbac:
            role = k8s.role_for_endpointslices()
            if endpoints_rbac:
                role["rules"].append({"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]})
            for obj in (k8s.service_account("seedsvc"), role, k8s.role_binding("seedsvc", "seedsvc", "seedsvc", name)):
                self.apply(name, obj)
        else:
            return None
        return self.plane.write_incluster_files(name, "seedsvc", self.workdir / "sa" / name)

    def statefulset(self, namespace: str, name: str, replicas: int) -> list[dict[str, Any]]:
        self.apply(namespace, k8s.headless_service(name))
        self.apply(namespace, k8s.statefulset(name, replicas))
        return self.kubelet.wait_for_pods(namespace, f"app={name}", replicas, ready=True, timeout=90)


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
    """A real `python -m seedsvc serve` on 127.0.0.1."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_at: float

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes, Mapping[str, str]]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.01) -> float:
        """Seconds from process start to the first /readyz 200 (polled every `interval`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sidecar {self.name} exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                status, _, _ = self.get("/readyz", timeout=1.0)
                if status == 200:
                    return time.monotonic() - self.started_at
            time.sleep(interval)
        raise RuntimeError(f"sidecar {self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_sidecar(name: str, env: Mapping[str, str], log_dir: Path) -> Sidecar:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    full_env.update({"SEEDSVC_HOST": LOOPBACK, "SEEDSVC_PORT": str(port), "SEEDSVC_LOG_LEVEL": "warning",
                     "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sidecar")])})
    full_env.update(env)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"sidecar-{name}.log"
    with log_path.open("wb") as handle:
        started = time.monotonic()
        process = subprocess.Popen([PYTHON, "-m", "seedsvc", "serve"], env=full_env, cwd=ROOT, stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Sidecar(name, process, port, log_path, started)


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {LOOPBACK}:{port} after {timeout:.0f}s")

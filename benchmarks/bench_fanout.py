"""API server fan-out: what one readiness change costs the API server when every sidecar watches.

Each sidecar watches every EndpointSlice of its Service, so one endpoint turning unready sends the
whole changed slice (up to 100 endpoints) once to every watcher. This benchmark measures that cost on
the project's real kube-apiserver for N watchers on a Service of N endpoints in slices of 100:

- egress bytes per change, counted by a TCP relay in front of the API server (TLS included), and the
  API server's CPU seconds per change (from /proc), for N in the configured levels;
- the same with JSON watches (what seedsvc uses) and protobuf watches
  (``application/vnd.kubernetes.protobuf``, what kube-proxy uses);
- a straight-line fit of both against N, and what it predicts for one change and for a rolling
  restart (two changes per node) at 1,000 and 5,000 nodes.

Relay mode (docs/scale.md, "Relay mode"): R real ``seedsvc serve`` relays watch through the same
counting relay, and N in-process clients long-poll them with the sidecar's own relay client
(``PeerClient`` with the relay view), each through a counting relay in front of its relay: API server
egress per change, the relays' egress per change, and change -> last client.

The watchers are raw watch streams in this process (one TLS connection each, as N sidecar processes
would hold), not full sources: parsing is the client's cost, not the API server's, and N sidecar
processes would not fit on 2 cores. The slices are written directly (no pods), as in the scale
benchmark; bookmarks are off so that only the change itself is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import statistics
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.bench_scale import headless_without_selector, make_slice
from benchmarks.common import (
    AsyncApi,
    Cluster,
    CountingProxy,
    api_target,
    cpu_seconds,
    human_bytes,
    kubernetes_env,
    log,
    start_sidecar,
    table,
)
from seedsvc.sources.peers import PeerAnswer, PeerClient, PeerConfig
from seedsvc.sources.relay import MAX_RELAY_BODY, RELAY_VIEW

SERVICE = "fanout"
SLICE_SIZE = 100
CONNECT_BATCH = 25
RELAYS = 2
FORMATS = {
    "json": "application/json",
    "protobuf": "application/vnd.kubernetes.protobuf",
}


@dataclass
class Watcher:
    """One raw watch stream: counts the bytes and the events it has received."""

    index: int
    events: int = 0
    body_bytes: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def apiserver_pid(cluster: Cluster) -> int:
    """The pid of this cluster's kube-apiserver, found by its command line (its TLS cert is in the plane's dir)."""
    marker = str(cluster.plane.directory)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv[0].endswith(b"kube-apiserver") and any(marker.encode() in arg for arg in argv):
                return int(proc.name)
    raise RuntimeError(f"no kube-apiserver process with {marker} on its command line")


def _count_json(buffer: bytearray) -> int:
    """Complete events in a JSON watch stream: one object per line."""
    events = buffer.count(b"\n")
    del buffer[: buffer.rfind(b"\n") + 1]
    return events


def _count_protobuf(buffer: bytearray) -> int:
    """Complete frames in a protobuf watch stream: each is a 4-byte big-endian length, then the frame."""
    events = offset = 0
    while len(buffer) - offset >= 4:
        (length,) = struct.unpack_from(">I", buffer, offset)
        if len(buffer) - offset - 4 < length:
            break
        offset += 4 + length
        events += 1
    del buffer[:offset]
    return events


class Fleet:
    """N watchers of one namespace's EndpointSlices, all through one counting relay."""

    def __init__(self, cluster: Cluster, proxy: CountingProxy, namespace: str, accept: str, count: int) -> None:
        self._base = f"https://127.0.0.1:{proxy.port}"
        self._namespace = namespace
        self._accept = accept
        self._ssl: ssl.SSLContext = cluster.admin_ssl()
        self.watchers = [Watcher(i) for i in range(count)]
        self._sessions: list[aiohttp.ClientSession] = []

    async def start(self, resource_version: str, proxy: CountingProxy) -> None:
        path = (f"/apis/discovery.k8s.io/v1/namespaces/{self._namespace}/endpointslices"
                f"?watch=1&allowWatchBookmarks=false&timeoutSeconds=3600&resourceVersion={resource_version}"
                f"&labelSelector=kubernetes.io%2Fservice-name%3D{SERVICE}")
        # Connect in batches: hundreds of simultaneous TLS handshakes on 2 busy cores time out, and
        # sidecars never all start in the same second anyway.
        for first in range(0, len(self.watchers), CONNECT_BATCH):
            for watcher in self.watchers[first:first + CONNECT_BATCH]:
                # One session (one connection) per watcher: N sidecars are N clients, not one shared pool.
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=1))
                self._sessions.append(session)
                watcher.task = asyncio.create_task(self._run(session, self._base + path, watcher))
            await self._connected(proxy, min(first + CONNECT_BATCH, len(self.watchers)))

    async def _connected(self, proxy: CountingProxy, count: int) -> None:
        deadline = time.monotonic() + 120
        while proxy.connections < count:
            if errors := self.failed():
                raise RuntimeError(f"{len(errors)} watchers failed, first: {errors[0]!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {proxy.connections} of {count} watches connected")
            await asyncio.sleep(0.05)

    async def _run(self, session: aiohttp.ClientSession, url: str, watcher: Watcher) -> None:
        count = _count_protobuf if "protobuf" in self._accept else _count_json
        timeout = aiohttp.ClientTimeout(total=None, connect=60)
        async with session.get(url, headers={"Accept": self._accept}, timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"watch {watcher.index}: HTTP {response.status}: {(await response.text())[:200]}")
            buffer = bytearray()
            async for chunk in response.content.iter_any():
                watcher.body_bytes += len(chunk)
                buffer += chunk
                watcher.events += count(buffer)

    def failed(self) -> list[BaseException]:
        tasks = [w.task for w in self.watchers if w.task is not None and w.task.done() and not w.task.cancelled()]
        return [error for task in tasks if (error := task.exception()) is not None]

    async def all_reached(self, events: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(w.events < events for w in self.watchers):
            if errors := self.failed():
                raise RuntimeError(f"{len(errors)} watchers failed, first: {errors[0]!r}")
            if time.monotonic() > deadline:
                behind = sum(w.events < events for w in self.watchers)
                raise TimeoutError(f"{behind} of {len(self.watchers)} watchers never saw event {events}")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        for watcher in self.watchers:
            if watcher.task is not None:
                watcher.task.cancel()
        for watcher in self.watchers:
            if watcher.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher.task
        for session in self._sessions:
            await session.close()


async def _create_service(api: AsyncApi, namespace: str, endpoints: int) -> tuple[list[dict[str, Any]], str]:
    await api.request("POST", "/api/v1/namespaces",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    await api.request("POST", f"/api/v1/namespaces/{namespace}/services", headless_without_selector(SERVICE))
    slices = []
    for index in range(math.ceil(endpoints / SLICE_SIZE)):
        first = index * SLICE_SIZE
        body = make_slice(SERVICE, index, first, min(SLICE_SIZE, endpoints - first))
        slices.append(await api.request(
            "POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", body))
    listed = await api.request(
        "GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
               f"?labelSelector=kubernetes.io%2Fservice-name%3D{SERVICE}")
    return slices, listed["metadata"]["resourceVersion"]


async def _flip(api: AsyncApi, namespace: str, slice_name: str, endpoint: int, ready: bool) -> None:
    """One readiness change: the EndpointSlice controller rewrites the slice the same way."""
    patch = [{"op": "replace", "path": f"/endpoints/{endpoint}/conditions/ready", "value": ready},
             {"op": "replace", "path": f"/endpoints/{endpoint}/conditions/serving", "value": ready}]
    await api.request("PATCH", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{slice_name}",
                      patch, content_type="application/json-patch+json")


async def _measure(cluster: Cluster, api: AsyncApi, *, watchers: int, fmt: str, changes: int) -> dict[str, Any]:
    namespace = f"bench-fanout-{fmt}-{watchers}"
    slices, version = await _create_service(api, namespace, watchers)
    proxy = CountingProxy(api_target(cluster)).start()
    fleet = Fleet(cluster, proxy, namespace, FORMATS[fmt], watchers)
    pid = apiserver_pid(cluster)
    try:
        started = time.monotonic()
        await fleet.start(version, proxy)
        await asyncio.sleep(2.0)  # let the last handshakes and request headers settle
        connect_s = time.monotonic() - started
        samples: list[dict[str, float]] = []
        for change in range(changes):
            _, _, down0 = proxy.snapshot()
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            # Each endpoint goes unready, then ready again: every patch is a real change, never a no-op.
            # Only full slices change (a 1,000-node datacenter's slices are all full), when there are any.
            full = [s for s in slices if len(s["endpoints"]) == SLICE_SIZE] or slices
            target = full[(change // 2) % len(full)]
            endpoint = (change // 2) % len(target["endpoints"])
            await _flip(api, namespace, target["metadata"]["name"], endpoint, ready=change % 2 == 1)
            await fleet.all_reached(change + 1, timeout=120)
            await asyncio.sleep(0.2)  # the relay thread forwards the last bytes
            _, _, down1 = proxy.snapshot()
            samples.append({"bytes": down1 - down0, "cpu_s": cpu_seconds(pid) - cpu0,
                            "fanout_s": time.monotonic() - t0})
        event_bytes = statistics.median(
            (w.body_bytes / max(w.events, 1)) for w in fleet.watchers)
        return {
            "watchers": watchers, "format": fmt, "changes": changes, "connect_s": connect_s,
            "event_body_bytes": event_bytes,
            "bytes_per_change": statistics.median(s["bytes"] for s in samples),
            "cpu_s_per_change": statistics.median(s["cpu_s"] for s in samples),
            "fanout_s": statistics.median(s["fanout_s"] for s in samples),
        }
    finally:
        await fleet.stop()
        proxy.stop()
        with contextlib.suppress(Exception):
            await api.request("DELETE", f"/api/v1/namespaces/{namespace}")


@dataclass
class RelayClient:
    """One sidecar's relay source, reduced to its long-poll: counts the digests it has received."""

    url: str
    answers: int = 0
    records: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def run(self) -> None:
        client = PeerClient(PeerConfig(self.url, self.url, max_body=MAX_RELAY_BODY), view=RELAY_VIEW)
        async for event in client.updates():
            if isinstance(event, PeerAnswer):
                self.answers += 1
                self.records = len(event.endpoints)


async def _relay_clients_reached(clients: list[RelayClient], answers: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(c.answers < answers for c in clients):
        failed = [c.task for c in clients if c.task is not None and c.task.done()]
        if failed:
            raise RuntimeError(f"{len(failed)} relay clients ended, first: {failed[0]!r}")
        if time.monotonic() > deadline:
            behind = sum(c.answers < answers for c in clients)
            raise TimeoutError(f"{behind} of {len(clients)} relay clients never got answer {answers}")
        await asyncio.sleep(0.005)


async def _measure_relay(cluster: Cluster, api: AsyncApi, *, sidecars: int, relays: int, changes: int,
                         log_dir: Path) -> dict[str, Any]:
    namespace = f"bench-fanout-relay-{sidecars}"
    slices, _ = await _create_service(api, namespace, sidecars)
    sa_dir = await asyncio.to_thread(cluster.grant_seedsvc, namespace)
    proxy = CountingProxy(api_target(cluster)).start()
    env = kubernetes_env(cluster, namespace, sa_dir, SERVICE, api_port=proxy.port, SEEDSVC_FLAP_GRACE="0",
                         CASSANDRA_SERVICE_NUM_SEEDS="3")
    servers = [start_sidecar(f"relay-{sidecars}-{i}", env, log_dir) for i in range(relays)]
    fronts: list[CountingProxy] = []
    clients: list[RelayClient] = []
    pid = apiserver_pid(cluster)
    try:
        for server in servers:
            await asyncio.to_thread(server.wait_ready)
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            fronts.append(CountingProxy((host, int(port))).start())
        clients = [RelayClient(f"http://127.0.0.1:{fronts[i % relays].port}") for i in range(sidecars)]
        for first in range(0, sidecars, CONNECT_BATCH):
            for client in clients[first:first + CONNECT_BATCH]:
                client.task = asyncio.create_task(client.run())
            await _relay_clients_reached(clients[first:first + CONNECT_BATCH], 1, timeout=120)
        await asyncio.sleep(2.0)
        samples: list[dict[str, float]] = []
        target = slices[0]  # endpoint 0 (big-0) is a seed: every change reaches every sidecar
        for change in range(changes):
            _, _, api0 = proxy.snapshot()
            relay0 = sum(front.snapshot()[2] for front in fronts)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            await _flip(api, namespace, target["metadata"]["name"], 0, ready=change % 2 == 1)
            await _relay_clients_reached(clients, change + 2, timeout=120)
            fanout_s = time.monotonic() - t0
            await asyncio.sleep(0.2)
            _, _, api1 = proxy.snapshot()
            relay1 = sum(front.snapshot()[2] for front in fronts)
            samples.append({"api_bytes": api1 - api0, "relay_bytes": relay1 - relay0,
                            "cpu_s": cpu_seconds(pid) - cpu0, "fanout_s": fanout_s})
        return {
            "sidecars": sidecars, "relays": relays, "changes": changes,
            "records": statistics.median(c.records for c in clients),
            "api_bytes_per_change": statistics.median(s["api_bytes"] for s in samples),
            "relay_bytes_per_change": statistics.median(s["relay_bytes"] for s in samples),
            "cpu_s_per_change": statistics.median(s["cpu_s"] for s in samples),
            "fanout_s": statistics.median(s["fanout_s"] for s in samples),
        }
    finally:
        for client in clients:
            if client.task is not None:
                client.task.cancel()
        for client in clients:
            if client.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client.task
        for front in fronts:
            front.stop()
        for server in servers:
            await asyncio.to_thread(server.stop)
        proxy.stop()
        with contextlib.suppress(Exception):
            await api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line y = a + b*x through the points (b alone when there is one point)."""
    if len(points) == 1:
        x, y = points[0]
        return 0.0, y / x
    slope, intercept = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return intercept, slope


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    async with AsyncApi(cluster) as api:
        for fmt in FORMATS:
            for watchers in cfg["fanout_watchers"]:
                log(f"fan-out: {watchers} {fmt} watchers")
                rows.append(await _measure(cluster, api, watchers=watchers, fmt=fmt, changes=cfg["fanout_changes"]))
        relay_rows = []
        for sidecars in cfg["fanout_watchers"]:
            log(f"fan-out: {sidecars} relay-mode sidecars, {RELAYS} relays")
            relay_rows.append(await _measure_relay(cluster, api, sidecars=sidecars, relays=RELAYS,
                                                   changes=cfg["fanout_changes"], log_dir=log_dir))
    fits: dict[str, dict[str, float]] = {}
    for fmt in FORMATS:
        mine = [r for r in rows if r["format"] == fmt]
        # Bytes: every watcher receives one copy of the changed slice, so egress is N copies of a
        # constant size; CPU: a fixed part plus a per-watcher part (encryption and writes), fitted.
        per_watcher = statistics.median(r["bytes_per_change"] / r["watchers"] for r in mine)
        cpu_a, cpu_b = _fit([(r["watchers"], r["cpu_s_per_change"]) for r in mine])
        fits[fmt] = {"bytes_a": 0.0, "bytes_b": per_watcher, "cpu_a": cpu_a, "cpu_b": cpu_b}
    return {"rows": rows, "fits": fits, "relay_rows": relay_rows}


def predict(fit: dict[str, float], nodes: int) -> dict[str, float]:
    """One change and a rolling restart (two changes per node) with one watcher per node."""
    change_bytes = fit["bytes_a"] + fit["bytes_b"] * nodes
    change_cpu = fit["cpu_a"] + fit["cpu_b"] * nodes
    return {"change_bytes": change_bytes, "change_cpu_s": change_cpu,
            "restart_bytes": 2 * nodes * change_bytes, "restart_cpu_s": 2 * nodes * change_cpu}


def report(results: dict[str, Any]) -> str:
    rows = results["rows"]
    measured = table(
        ["watchers (= endpoints)", "format", "event size", "egress per change", "per watcher",
         "API server CPU per change", "change → last watcher"],
        [[r["watchers"], r["format"], human_bytes(r["event_body_bytes"]), human_bytes(r["bytes_per_change"]),
          human_bytes(r["bytes_per_change"] / r["watchers"]), f"{r['cpu_s_per_change'] * 1000:.0f} ms",
          f"{r['fanout_s'] * 1000:.0f} ms"] for r in rows])
    predicted_rows = []
    for fmt, fit in results["fits"].items():
        for nodes in (1000, 5000):
            p = predict(fit, nodes)
            predicted_rows.append([fmt, f"{nodes:,}", human_bytes(p["change_bytes"]),
                                   f"{p['change_cpu_s']:.2f} s", human_bytes(p["restart_bytes"]),
                                   f"{p['restart_cpu_s'] / 60:.0f} min"])
    predicted = table(["format", "nodes", "egress per change", "API server CPU per change",
                       "egress per rolling restart", "API server CPU per rolling restart"], predicted_rows)
    json_fit, proto_fit = results["fits"]["json"], results["fits"]["protobuf"]
    ratio = proto_fit["bytes_b"] / json_fit["bytes_b"] if json_fit["bytes_b"] else float("nan")
    return "\n".join([
        f"N raw watch streams (one TLS connection each) on a Service of N endpoints in slices of {SLICE_SIZE}; "
        "one endpoint's readiness flipped per change; egress counted by a TCP relay in front of the API "
        "server (TLS included), CPU from the API server's /proc entry; medians over "
        f"{rows[0]['changes']} changes per row.",
        "",
        measured,
        "",
        "Extrapolated to one watcher per node: egress is N copies of the changed slice (slices of 100, so "
        "the copy does not grow with N: the median bytes per watcher above, times N); CPU is a straight-line "
        "fit against N; a rolling restart is two changes per node:",
        "",
        predicted,
        "",
        f"Egress grows linearly with the number of watchers; protobuf moves {ratio:.2f}x the JSON bytes per "
        "watcher, a constant factor that leaves the N x N growth of a rolling restart unchanged.",
        "",
        *relay_report(results.get("relay_rows", [])),
    ])


def relay_report(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    measured = table(
        ["sidecars", "relays", "API server egress per change", "API server CPU per change",
         "relays' egress per change", "per sidecar", "records per answer", "change → last sidecar"],
        [[r["sidecars"], r["relays"], human_bytes(r["api_bytes_per_change"]), f"{r['cpu_s_per_change'] * 1000:.0f} ms",
          human_bytes(r["relay_bytes_per_change"]), human_bytes(r["relay_bytes_per_change"] / r["sidecars"]),
          f"{r['records']:.0f}", f"{r['fanout_s'] * 1000:.0f} ms"] for r in rows])
    return [
        "Relay mode: real `seedsvc serve` relays watch through the counting relay; N in-process clients (the "
        "sidecar's relay client) long-poll them, each relay behind its own counting relay. Every change "
        "flips a seed, so every sidecar's answer changes (the worst case):",
        "",
        measured,
    ]


def headlines(results: dict[str, Any]) -> list[str]:
    json_1000 = predict(results["fits"]["json"], 1000)
    proto_1000 = predict(results["fits"]["protobuf"], 1000)
    biggest = max(r["watchers"] for r in results["rows"])
    relay = max(results.get("relay_rows", []), key=lambda r: r["sidecars"], default=None)
    relay_line = [] if relay is None else [
        f"Relay mode ({relay['relays']} relays, {relay['sidecars']} sidecars): one change costs the API server "
        f"{human_bytes(relay['api_bytes_per_change'])} and the relays {human_bytes(relay['relay_bytes_per_change'])}; "
        f"change → last sidecar {relay['fanout_s'] * 1000:.0f} ms."]
    return [*relay_line,
        f"API server fan-out, direct watches (measured up to {biggest} watchers, fitted): one readiness "
        f"change in a 1,000-node datacenter costs {human_bytes(json_1000['change_bytes'])} of egress as JSON "
        f"({human_bytes(proto_1000['change_bytes'])} as protobuf); a rolling restart "
        f"{human_bytes(json_1000['restart_bytes'])}.",
    ]

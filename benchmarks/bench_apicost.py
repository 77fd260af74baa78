"""API server cost: requests and bytes per sidecar per hour, at steady state and during churn, versus
pollers that LIST every 1 s, 5 s and 30 s.

Requests are counted by the API server itself (``apiserver_request_total``, resource endpointslices,
scope namespace: the controllers and CoreDNS watch cluster-wide, so these are ours alone; a request
is counted when it ends, so long-running WATCHes count once each, when they close). Bytes are counted
by a TCP relay in front of the API server (TLS included), one relay per measured group.

100 sidecars as 100 processes would not fit 2 cores next to a control plane, so the 100 watchers are
100 ``KubernetesSource`` instances, each with its own client session and connection, in one process:
the same code path as the sidecar minus the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.baselines import Poller
from benchmarks.common import (
    AsyncApi,
    Cluster,
    CountingProxy,
    api_target,
    count_delta,
    human_bytes,
    log,
    request_counts,
    table,
)
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, Restart, View
from seedsvc.sources.kubernetes import KubernetesSource
from seedsvc_devcluster.processes import rss_bytes

NAMESPACE = "bench-api"
HOUR = 3600.0


class Watchers:
    """N KubernetesSource instances in this process, each consuming its updates() in a task."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.sources = [KubernetesSource(settings) for _ in range(count)]
        self.views = [0] * count
        self.restarts = 0
        self.failures = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def _consume(self, index: int) -> None:
        async for event in self.sources[index].updates():
            if isinstance(event, View):
                self.views[index] += 1
            elif isinstance(event, Restart):
                self.restarts += 1
            elif isinstance(event, Failure):
                self.failures += 1

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._consume(i)) for i in range(len(self.sources))]

    async def synced(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while min(self.views) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.views.count(0)} watchers never got their first view")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class Meter:
    """API server request counts (by verb) and relay bytes between two moments."""

    def __init__(self, cluster: Cluster, proxy: CountingProxy) -> None:
        self.cluster, self.proxy = cluster, proxy
        self.counts = request_counts(cluster.plane, resource="endpointslices")
        self.bytes = proxy.snapshot()
        self.began = time.monotonic()

    def read(self) -> dict[str, Any]:
        now = self.proxy.snapshot()
        return {
            "seconds": time.monotonic() - self.began,
            "requests": count_delta(request_counts(self.cluster.plane, resource="endpointslices"), self.counts),
            "bytes": (now[1] - self.bytes[1]) + (now[2] - self.bytes[2]),
            "connections": now[0] - self.bytes[0],
        }


async def _churn(api: AsyncApi, pods: list[str], seconds: float, interval: float = 1.0) -> int:
    """One readiness change every `interval` seconds (bounded by `seconds`); returns how many."""
    changes = 0
    deadline = time.monotonic() + seconds
    ready = dict.fromkeys(pods, True)
    while time.monotonic() < deadline:
        pod = pods[changes % len(pods)]
        ready[pod] = not ready[pod]
        await api.set_pod_ready(NAMESPACE, pod, ready[pod])
        changes += 1
        await asyncio.sleep(interval)
    for pod, is_ready in ready.items():
        if not is_ready:
            await api.set_pod_ready(NAMESPACE, pod, True)
    return changes


def _settings(cluster: Cluster, proxy: CountingProxy, sa_dir: Path, **changes: Any) -> Settings:
    env = cluster.plane.incluster_env()
    return Settings(namespace=NAMESPACE, kubernetes_host=env["KUBERNETES_SERVICE_HOST"], kubernetes_port=proxy.port,
                    serviceaccount_dir=sa_dir, **changes)


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    sa_dir = cluster.namespace(NAMESPACE)
    assert sa_dir is not None
    pods = sorted(p["metadata"]["name"] for p in cluster.statefulset(NAMESPACE, "cassandra", 3))
    target = api_target(cluster)
    results: dict[str, Any] = {"watch_timeout": Settings().watch_timeout}

    # --- the cost of one watch cycle (re-watch after the server's timeoutSeconds) ----------------------
    # Compressed in time: 10 watchers with a 4 s watch timeout (2-4 s with jitter), so a window of
    # seconds holds dozens of cycles. Per cycle: the WATCH request, response headers, the bookmark the
    # server sends 2 s before the deadline, the end of the stream; none of it depends on the timeout.
    proxy = CountingProxy(target).start()
    watchers = Watchers(_settings(cluster, proxy, sa_dir, watch_timeout=4.0), 10)
    try:
        watchers.start()
        await watchers.synced(60)
        await asyncio.sleep(0.5)
        meter, restarts0 = Meter(cluster, proxy), watchers.restarts
        await asyncio.sleep(cfg["api_cycle_s"])
        cycle = meter.read()
        cycle["cycles"] = watchers.restarts - restarts0
    finally:
        await watchers.stop()
        proxy.stop()
    results["cycle"] = cycle
    cycles = max(1, cycle["cycles"])
    results["bytes_per_cycle"] = cycle["bytes"] / cycles
    results["requests_per_cycle"] = sum(cycle["requests"].values()) / cycles
    log(f"watch cycle: {results['bytes_per_cycle']:.0f} B, {results['requests_per_cycle']:.2f} requests "
        f"({cycle['cycles']} cycles)")

    # --- 100 watchers with the defaults -----------------------------------------------------------------
    proxy = CountingProxy(target).start()
    n = cfg["api_watchers"]
    rss_before = rss_bytes(os.getpid())
    watchers = Watchers(_settings(cluster, proxy, sa_dir), n)
    try:
        meter = Meter(cluster, proxy)
        watchers.start()
        await watchers.synced(60)
        results["initial_sync_s"] = meter.read()["seconds"]
        await asyncio.sleep(1.0)  # let the watches open
        results["start"] = meter.read()
        results["rss_per_watcher"] = (rss_bytes(os.getpid()) - rss_before) / n
        log(f"{n} watchers synced in {results['initial_sync_s']:.1f}s")

        meter, restarts0 = Meter(cluster, proxy), watchers.restarts
        await asyncio.sleep(cfg["api_idle_s"])
        results["idle"] = meter.read()
        results["idle"]["cycles"] = watchers.restarts - restarts0

        async with AsyncApi(cluster) as api:
            meter, restarts0 = Meter(cluster, proxy), watchers.restarts
            changes = await _churn(api, pods, cfg["api_churn_s"])
            await asyncio.sleep(1.0)
        results["churn"] = meter.read()
        results["churn"]["cycles"] = watchers.restarts - restarts0
        results["churn"]["changes"] = changes
        results["failures"] = watchers.failures
    finally:
        await watchers.stop()
        proxy.stop()
    results["instances"] = n
    derive(results)
    log(f"steady: {results['steady_requests_per_hour']:.1f} req/h, {human_bytes(results['steady_bytes_per_hour'])}/h; "
        f"per change {results['bytes_per_change']:.0f} B per watcher")

    # --- pollers ---------------------------------------------------------------------------------
    pollers = []
    proxies = []
    try:
        for interval in (1.0, 5.0, 30.0):
            relay = CountingProxy(target).start()
            proxies.append(relay)
            pollers.append(Poller("127.0.0.1", relay.port, NAMESPACE, "cassandra", sa_dir, interval))
        # All three at once: the API server metric cannot tell them apart, but each has its own relay and
        # counts its own requests; the metric checks the total.
        before = request_counts(cluster.plane, resource="endpointslices")
        began = time.monotonic()
        await asyncio.gather(*(p.run(cfg["api_poll_s"]) for p in pollers))
        seconds = time.monotonic() - began
        counted = count_delta(request_counts(cluster.plane, resource="endpointslices"), before)
        results["pollers"] = {
            "seconds": seconds,
            "apiserver_counted": counted,
            "client_counted": sum(p.requests for p in pollers),
            "by_interval": {
                str(p.interval): {
                    "requests": p.requests,
                    "requests_per_hour": HOUR / p.interval,
                    "bytes_per_request": (r.to_server + r.to_client) / max(1, p.requests),
                    "bytes_per_hour": (r.to_server + r.to_client) / max(1, p.requests) * HOUR / p.interval,
                }
                for p, r in zip(pollers, proxies, strict=True)
            },
        }
    finally:
        for relay in proxies:
            relay.stop()
    return results


def derive(r: dict[str, Any]) -> None:
    """Steady-state rates per watcher per hour from the measured pieces.

    A watch ends after a uniformly jittered [timeout/2, timeout] seconds, so at steady state a watcher
    makes 3600 / (0.75 * timeout) cycles an hour. The idle window started right after a synchronised
    start, so it holds fewer cycle ends than a steady hour would: its cycle bytes are replaced by the
    steady-state number of cycles at the measured cost per cycle; what remains is the periodic traffic
    (bookmarks about once a minute).
    """
    n, idle, churn = r["instances"], r["idle"], r["churn"]
    cycles_per_hour = HOUR / (0.75 * r["watch_timeout"])
    periodic = max(0.0, idle["bytes"] - idle["cycles"] * r["bytes_per_cycle"]) / n / idle["seconds"] * HOUR
    r["cycles_per_hour"] = cycles_per_hour
    r["periodic_bytes_per_hour"] = periodic
    r["steady_requests_per_hour"] = cycles_per_hour * r["requests_per_cycle"]
    r["steady_bytes_per_hour"] = periodic + cycles_per_hour * r["bytes_per_cycle"]
    background = (periodic * n / HOUR) * churn["seconds"] + churn["cycles"] * r["bytes_per_cycle"]
    r["bytes_per_change"] = max(0.0, churn["bytes"] - background) / n / max(1, churn["changes"])
    r["churn_requests_extra"] = churn["requests"]
    r["start_bytes"] = r["start"]["bytes"] / n


def report(results: dict[str, Any]) -> str:
    r = results
    idle, churn = r["idle"], r["churn"]
    pollers = r["pollers"]["by_interval"]
    churn_rate = 3600.0
    churn_bytes = r["steady_bytes_per_hour"] + churn_rate * r["bytes_per_change"]
    rows = [
        ["sidecar watch, steady state (no changes)", f"{r['steady_requests_per_hour']:.1f}",
         human_bytes(r["steady_bytes_per_hour"])],
        [f"sidecar watch, churn of one readiness change per second ({churn_rate:.0f}/h)",
         f"{r['steady_requests_per_hour']:.1f}", human_bytes(churn_bytes)],
    ]
    for interval, p in pollers.items():
        rows.append([f"poller, LIST every {float(interval):g} s (keep-alive)", f"{p['requests_per_hour']:.0f}",
                     human_bytes(p["bytes_per_hour"])])
    ratio_rows = [[f"LIST every {float(i):g} s", f"{p['requests_per_hour'] / r['steady_requests_per_hour']:.0f}x",
                   f"{p['bytes_per_hour'] / r['steady_bytes_per_hour']:.1f}x",
                   f"{p['bytes_per_hour'] / churn_bytes:.1f}x"] for i, p in pollers.items()]
    verbs = ", ".join(f"{v} {c:.0f}" for v, c in sorted(idle["requests"].items())) or "none"
    churn_verbs = ", ".join(f"{v} {c:.0f}" for v, c in sorted(churn["requests"].items())) or "none"
    n = r["instances"]
    thirty = pollers["30.0"]["bytes_per_hour"]
    breakeven = (thirty - r["steady_bytes_per_hour"]) / max(1.0, r["bytes_per_change"])
    return "\n".join([
        f"{n} watchers on one 3-pod Service: {n} `KubernetesSource` instances (the sidecar's discovery code, "
        "each with its own client session and connection) in **one process**, since 100 sidecar processes "
        "do not fit 2 cores beside a control plane. Requests are counted by the API server "
        "(`apiserver_request_total`, EndpointSlice requests in namespace scope, which only these clients "
        "make; a WATCH is counted when it ends), bytes by a TCP relay in front of it (both directions, TLS "
        "included).\n",
        table(["client (per sidecar)", "requests / h", "bytes / h"], rows),
        "",
        "How the sidecar rows are made (all pieces measured in this run):",
        "",
        f"- A watch ends after the server-side `timeoutSeconds` the sidecar asks for, jittered uniformly in "
        f"[{r['watch_timeout'] / 2:.0f}, {r['watch_timeout']:.0f}] s, and resumes from its resourceVersion "
        f"without a LIST: {r['cycles_per_hour']:.1f} cycles per hour. One cycle costs "
        f"{r['requests_per_cycle']:.2f} requests and {human_bytes(r['bytes_per_cycle'])} (measured over "
        f"{r['cycle']['cycles']} cycles of watchers with a 4 s timeout: {r['cycle']['seconds']:.0f} s).",
        f"- Between cycles the server sends bookmarks about once a minute: {human_bytes(r['periodic_bytes_per_hour'])} "
        f"per hour, from a {idle['seconds']:.0f} s idle window of the {n} watchers (which also held "
        f"{idle['cycles']} cycle ends, subtracted at the per-cycle cost). Requests the API server counted in "
        f"that window: {verbs}."
        + (" (This window is shorter than a minute, too short to see a bookmark: `--quick` understates "
           "this line.)" if idle["seconds"] < 65 else ""),
        f"- Each readiness change costs every watcher {human_bytes(r['bytes_per_change'])} (the slice as a "
        f"MODIFIED event, TLS included) and no request: in a {churn['seconds']:.0f} s window with "
        f"{churn['changes']} changes the API server counted {churn_verbs}, and the watchers themselves saw "
        f"{churn['cycles']} routine watch-cycle ends in that window (the watches started about "
        f"{r['idle']['seconds']:.0f} s earlier, so many of their first timeouts fall here): no LIST, no "
        "request caused by a change.",
        f"- Start-up: one LIST and one WATCH, {human_bytes(r['start_bytes'])} per watcher (TLS handshake "
        f"included); all {n} synced in {r['initial_sync_s']:.1f} s. Each extra in-process watcher added "
        f"{human_bytes(r['rss_per_watcher'])} RSS. Discovery failures seen: {r['failures']}.",
        "",
        "Pollers relative to the sidecar (same run):\n",
        table(["poller", "requests ratio", "bytes ratio (steady)", "bytes ratio (1 change/s)"], ratio_rows),
        "",
        f"The watch's bytes grow with the number of changes, a poller's with time: against a 30 s poller "
        f"the watch moves fewer bytes up to about {breakeven:,.0f} changes per hour per Service (a rolling "
        "restart of a 10-node cluster is about 20), and it always makes far fewer requests, each of which "
        "costs the API server authentication, authorisation and (for a LIST) a serialisation of the "
        "objects.",
        "",
        f"Poller check: over {r['pollers']['seconds']:.0f} s the pollers sent {r['pollers']['client_counted']} "
        f"LISTs and the API server counted {sum(r['pollers']['apiserver_counted'].values()):.0f}. "
        f"For {n} sidecars multiply the per-sidecar rows by {n}: a 1 s poller fleet would send "
        f"{100 * 3600:,} LISTs an hour, the watching fleet about {100 * r['steady_requests_per_hour']:,.0f} "
        "requests.",
    ])


def headlines(r: dict[str, Any]) -> list[str]:
    one = r["pollers"]["by_interval"]["1.0"]
    thirty = r["pollers"]["by_interval"]["30.0"]
    return [f"API cost per sidecar per hour at steady state: **{r['steady_requests_per_hour']:.1f} requests, "
            f"{human_bytes(r['steady_bytes_per_hour'])}**; each change adds {human_bytes(r['bytes_per_change'])} "
            f"and no request. A 1 s poller: {one['requests_per_hour']:.0f} requests, "
            f"{human_bytes(one['bytes_per_hour'])} ({one['requests_per_hour'] / r['steady_requests_per_hour']:.0f}x "
            f"the requests); even a 30 s poller makes "
            f"{thirty['requests_per_hour'] / r['steady_requests_per_hour']:.0f}x the requests."]

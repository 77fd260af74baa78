"""Convergence: from a change in the API server to the new list at a running sidecar's GET /seeds.

* Kubernetes source: readiness flips written as the kubelet writes them (a PATCH of the pod's Ready and
  ContainersReady conditions), timed from the PATCH's completion to the first long-poll answer
  (``/seeds?wait=..&generation=N``) carrying the new list; plus pod deletions and StatefulSet scale-ups.
* DNS source through CoreDNS with kubeadm's caching (``cache 30``, ``ttl 30``): the same flips, timed
  the same way, on several Services at once (each has its own cache entry), since each takes seconds.
* The classic provider: per-call latency and API cost of listing v1 Endpoints on each getSeeds().
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.baselines import ClassicSeedProvider
from benchmarks.common import (
    AsyncApi,
    Cluster,
    CountingProxy,
    LongPoller,
    api_target,
    count_delta,
    human_bytes,
    kubernetes_env,
    log,
    median,
    ms,
    request_counts,
    secs,
    start_sidecar,
    summary,
    table,
)
from seedsvc_devcluster import k8s_objects as k8s

NAMESPACE = "bench-conv"
DNS_NAMESPACE = "bench-dns"
CHANGE_TIMEOUT = 30.0
DNS_CHANGE_TIMEOUT = 150.0


def _ips(pods: list[dict[str, Any]]) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}


async def _kubernetes(cluster: Cluster, cfg: dict[str, Any], log_dir: Path, sa_dir: Path) -> dict[str, Any]:
    pods = _ips(cluster.statefulset(NAMESPACE, "cassandra", 4))
    # No caller identity and a count above the pod count: every readiness flip changes the served list.
    # Flap damping (SEEDSVC_FLAP_GRACE, 30 s by default) deliberately holds an unready seed; it is
    # turned off so the numbers show the discovery path, not that policy delay.
    env = kubernetes_env(cluster, NAMESPACE, sa_dir, "cassandra", CASSANDRA_SERVICE_NUM_SEEDS="10",
                         SEEDSVC_FLAP_GRACE="0")
    sidecar = start_sidecar("convergence-k8s", env, log_dir)
    rng = random.Random(6)
    runs: list[list[float]] = []
    deletes: list[float] = []
    scale_ups: list[float] = []
    scale_downs: list[float] = []
    try:
        sidecar.wait_ready()
        async with aiohttp.ClientSession() as session, AsyncApi(cluster) as api:
            poller = LongPoller(session, sidecar.url)
            await poller.current()
            await poller.until(lambda s: set(pods.values()) <= set(s), CHANGE_TIMEOUT)
            flippable = sorted(pods)[1:]
            for run in range(cfg["conv_runs"]):
                samples: list[float] = []
                for i in range(cfg["conv_changes_per_run"] // 2):
                    pod = flippable[i % len(flippable)]
                    ip = pods[pod]
                    for ready in (False, True):
                        await api.set_pod_ready(NAMESPACE, pod, ready)
                        written = time.monotonic()
                        arrived, _ = await poller.until(
                            (lambda s, ip=ip: ip in s) if ready else (lambda s, ip=ip: ip not in s), CHANGE_TIMEOUT)
                        samples.append(arrived - written)
                        await asyncio.sleep(rng.uniform(0.02, 0.1))
                runs.append(samples)
                log(f"convergence k8s run {run + 1}: p50 {ms(summary(samples)['p50'])} "
                    f"p99 {ms(summary(samples)['p99'])} over {len(samples)} changes")
            # Deletions: the pod turns terminating at once; the StatefulSet then recreates it (new IP).
            for i in range(cfg["conv_deletes"]):
                pod = flippable[i % len(flippable)]
                ip = pods[pod]
                await api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")
                written = time.monotonic()
                arrived, _ = await poller.until(lambda s, ip=ip: ip not in s, CHANGE_TIMEOUT)
                deletes.append(arrived - written)
                _, seeds = await poller.until(lambda s: len(s) == 4, 60)
                pods[pod] = next(a for a in seeds if a not in pods.values())
            # Scale-up (end to end: StatefulSet controller, stand-in scheduling and start, EndpointSlice
            # controller, watch) and back down (the pod is deleted: it turns terminating).
            sts = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/cassandra"
            for _ in range(cfg["conv_scales"]):
                await api.request("PATCH", sts, {"spec": {"replicas": 5}}, content_type="application/merge-patch+json")
                written = time.monotonic()
                arrived, _ = await poller.until(lambda s: len(s) == 5, 60)
                scale_ups.append(arrived - written)
                await api.request("PATCH", sts, {"spec": {"replicas": 4}}, content_type="application/merge-patch+json")
                written = time.monotonic()
                arrived, _ = await poller.until(lambda s: len(s) == 4, 60)
                scale_downs.append(arrived - written)
                await asyncio.sleep(0.2)
    finally:
        sidecar.stop()
    return {"runs": runs, "deletes": deletes, "scale_ups": scale_ups, "scale_downs": scale_downs}


async def _dns(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    cluster.namespace(DNS_NAMESPACE, rbac=False)
    services = [f"dns{i}" for i in range(cfg["dns_services"])]
    all_pods: dict[str, dict[str, str]] = {}
    for name in services:
        cluster.apply(DNS_NAMESPACE, k8s.headless_service(name))
        cluster.apply(DNS_NAMESPACE, k8s.statefulset(name, 2))
    for name in services:
        all_pods[name] = _ips(cluster.kubelet.wait_for_pods(DNS_NAMESPACE, f"app={name}", 2, ready=True, timeout=90))
    host, port = cluster.plane.dns
    sidecars = [
        start_sidecar(f"convergence-dns-{name}", {
            "SEEDSVC_SOURCE": "dns", "CASSANDRA_SERVICE": name, "POD_NAMESPACE": DNS_NAMESPACE,
            "SEEDSVC_DNS_NAMESERVER": f"{host}:{port}", "SEEDSVC_CLUSTER_DOMAIN": cluster.plane.cluster_domain,
            "CASSANDRA_SERVICE_NUM_SEEDS": "10", "SEEDSVC_FLAP_GRACE": "0",
        }, log_dir)
        for name in services
    ]
    samples: list[float] = []
    rng = random.Random(53)
    try:
        for sidecar in sidecars:
            sidecar.wait_ready()
        async with aiohttp.ClientSession() as session, AsyncApi(cluster) as api:

            async def one_service(name: str, url: str) -> None:
                poller = LongPoller(session, url)
                await poller.current()
                pods = all_pods[name]
                await poller.until(lambda s: set(pods.values()) <= set(s), DNS_CHANGE_TIMEOUT)
                pod = f"{name}-1"
                ip = pods[pod]
                for _ in range(cfg["dns_rounds"]):
                    for ready in (False, True) if cfg["dns_both_ways"] else (False,):
                        # A random phase against the cache entry's life, as a real change would have.
                        await asyncio.sleep(rng.uniform(0, 30))
                        await api.set_pod_ready(DNS_NAMESPACE, pod, ready)
                        written = time.monotonic()
                        arrived, _ = await poller.until(
                            (lambda s: ip in s) if ready else (lambda s: ip not in s), DNS_CHANGE_TIMEOUT)
                        samples.append(arrived - written)
                if not cfg["dns_both_ways"]:
                    await api.set_pod_ready(DNS_NAMESPACE, pod, True)

            await asyncio.gather(*(one_service(name, s.url) for name, s in zip(services, sidecars, strict=True)))
    finally:
        for sidecar in sidecars:
            sidecar.stop()
    log(f"convergence dns: p50 {secs(summary(samples)['p50'])} max {secs(summary(samples)['max'])} "
        f"over {len(samples)} changes")
    return {"samples": samples, "services": len(services)}


def _classic(cluster: Cluster, cfg: dict[str, Any], sa_dir: Path) -> dict[str, Any]:
    proxy = CountingProxy(api_target(cluster)).start()
    try:
        provider = ClassicSeedProvider("127.0.0.1", proxy.port, NAMESPACE, "cassandra", sa_dir)
        provider.get_seeds()  # warm-up (imports, first handshake)
        before_counts = request_counts(cluster.plane, resource="endpoints", scope="resource")
        before = proxy.snapshot()
        latencies = []
        for _ in range(cfg["classic_calls"]):
            started = time.perf_counter()
            seeds = provider.get_seeds()
            latencies.append(time.perf_counter() - started)
            assert seeds, "classic provider saw no addresses"
        after = proxy.snapshot()
        counts = count_delta(request_counts(cluster.plane, resource="endpoints", scope="resource"), before_counts)
    finally:
        proxy.stop()
    calls = cfg["classic_calls"]
    return {
        "latency": latencies,
        "connections_per_call": (after[0] - before[0]) / calls,
        "bytes_per_call": (after[1] - before[1] + after[2] - before[2]) / calls,
        "api_requests_per_call": sum(counts.values()) / calls,
        "api_counts": counts,
    }


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    sa_dir = cluster.namespace(NAMESPACE, endpoints_rbac=True)
    assert sa_dir is not None
    results: dict[str, Any] = {"errors": {}}
    results["kubernetes"] = await _kubernetes(cluster, cfg, log_dir, sa_dir)
    try:
        results["classic"] = await asyncio.to_thread(_classic, cluster, cfg, sa_dir)
        log(f"classic getSeeds(): p50 {ms(summary(results['classic']['latency'])['p50'])}")
    except Exception as exc:
        results["errors"]["classic"] = f"{type(exc).__name__}: {exc}"
        log(f"classic baseline FAILED: {results['errors']['classic']}")
    try:
        results["dns"] = await _dns(cluster, cfg, log_dir)
    except Exception as exc:
        results["errors"]["dns"] = f"{type(exc).__name__}: {exc}"
        log(f"dns convergence FAILED: {results['errors']['dns']}")
    return results


def report(results: dict[str, Any]) -> str:
    k = results["kubernetes"]
    pooled = [x for r in k["runs"] for x in r]
    total = summary(pooled)
    per_run = [summary(r) for r in k["runs"]]
    rows = [
        ["Kubernetes source, readiness flip (pod status PATCH)", total["n"], ms(total["p50"]), ms(total["p90"]),
         ms(total["p99"]), ms(total["max"])],
    ]
    for label, key in (("Kubernetes source, pod deletion (DELETE)", "deletes"),
                       ("Kubernetes source, scale-up 4→5 (replicas PATCH, end to end)", "scale_ups"),
                       ("Kubernetes source, scale-down 5→4 (replicas PATCH)", "scale_downs")):
        if k[key]:
            s = summary(k[key])
            rows.append([label, s["n"], ms(s["p50"]), ms(s["p90"]), ms(s["p99"]), ms(s["max"])])
    dns = summary(results["dns"]["samples"]) if "dns" in results else None
    if dns is not None:
        rows.append(["DNS source via CoreDNS (`cache 30`, `ttl 30`), readiness flip", dns["n"], secs(dns["p50"]),
                     secs(dns["p90"]), secs(dns["p99"]), secs(dns["max"])])
    out = [
        "Timed from the completion of the API write to the arrival of the first long-poll answer "
        "(`/seeds?wait=..&generation=N`, so no polling delay) carrying the new list. Readiness flips are "
        "written as a kubelet writes them: a strategic-merge PATCH of the pod's `Ready` and "
        "`ContainersReady` conditions; the EndpointSlice controller then updates the slice, the sidecar's "
        "watch delivers it, `select()` runs and the long-poll is answered. The sidecar (a real `seedsvc "
        "serve` process, in-cluster credentials, 4-pod StatefulSet) runs with `SEEDSVC_FLAP_GRACE=0` and a "
        "count above the pod count so every flip changes the list (the default 30 s flap damping "
        "deliberately delays the removal of an unready *seed*; other changes are not delayed). Deletions "
        "are timed from the DELETE (the endpoint turns terminating); scale-ups from the replicas PATCH "
        "through the StatefulSet controller and the kubelet stand-in's scheduling and start, which in a "
        "real cluster take far longer (image pull, container start, probes).\n",
        table(["change", "n", "p50", "p90", "p99", "max"], rows),
        "",
        "Scale-up and scale-down times are mostly the StatefulSet controller's and the kubelet stand-in's "
        "work (pod creation, binding, start; deletion), not the sidecar's, and they vary a lot from run to "
        "run (on the same machine under heavy background load, an earlier run measured scale-up p50 845 ms "
        "and scale-down p50 21 ms).",
        "",
        f"Kubernetes source, per run of {len(k['runs'][0]) if k['runs'] else 0} changes: p50 "
        + ", ".join(ms(s["p50"]) for s in per_run) + f" (median {ms(median([s['p50'] for s in per_run]))}); p99 "
        + ", ".join(ms(s["p99"]) for s in per_run) + f" (median {ms(median([s['p99'] for s in per_run]))}).",
        "",
    ]
    if dns is not None:
        out += [
            f"DNS through a caching CoreDNS is **{dns['p50'] / total['p50']:.0f}x** slower than the watch at the "
            f"median (p50 ratio). The DNS figures come from {results['dns']['services']} Services measured at "
            "once (each Service name has its own cache entry; A/AAAA queries of the headless Service, which "
            "lists ready pods only), each change written at a random moment in the cache entry's life. The "
            "sidecar asks again when the answer's TTL runs out (the cache hands out the remaining TTL), so a "
            "change waits for the cached answer to expire: uniform over 0-30 s in theory.",
            "",
        ]
    else:
        out += [f"DNS source: **not measured**: {results['errors'].get('dns')}", ""]
    classic = results.get("classic")
    if classic is None:
        out += [f"Classic provider: **not measured**: {results['errors'].get('classic')}"]
        return "\n".join(out)
    cl = summary(classic["latency"])
    out += [
        "**The classic provider** (`KubernetesSeedProvider`: a new HTTPS connection and one GET of the v1 "
        "Endpoints object per `getSeeds()` call, see `benchmarks/baselines.py`) has no convergence of its "
        "own: a node sees a change only when Cassandra next calls `getSeeds()`. In Cassandra 5.0.9 "
        "(checked in the bytecode of `cassandra-all`) that happens during start-up (`Gossiper.start`, the "
        "shadow round, `StorageService.isSeed`, `waitForSchema`), when a node is removed from gossip "
        "(`Gossiper.removeEndpoint` rebuilds the seed list) and on `nodetool reloadseeds`; never on a timer. "
        "So a running node keeps the list it started with: convergence is unbounded (until a restart or a "
        "`reloadseeds`). If something did call it every *T* seconds, a change would wait *T*/2 on average "
        "and *T* at worst, plus the call itself:\n",
        table(["classic getSeeds() call", "value"], [
            ["calls measured (back to back)", cl["n"]],
            ["latency p50 / p90 / p99", f"{ms(cl['p50'])} / {ms(cl['p90'])} / {ms(cl['p99'])}"],
            ["API requests per call (apiserver_request_total, GET endpoints)",
             f"{classic['api_requests_per_call']:.2f}"],
            ["new TCP+TLS connections per call", f"{classic['connections_per_call']:.2f}"],
            ["bytes on the wire per call (both ways, TLS included)", human_bytes(classic["bytes_per_call"])],
            ["called every 10 s: requests / bytes per node per hour",
             f"360 / {human_bytes(classic['bytes_per_call'] * 360)}"],
        ]),
        "",
        f"One classic call ({ms(cl['p50'])} p50) costs about as much time as the sidecar's whole "
        f"change-to-answer path ({ms(total['p50'])} p50; ratio {cl['p50'] / total['p50']:.1f}x), and Cassandra "
        "makes it several times on its main thread during start-up, against a slow or unreachable API server "
        "with no timeout in the original; with the sidecar the shim asks loopback (see the HTTP section for "
        "that cost).",
    ]
    return "\n".join(out)


def headlines(results: dict[str, Any]) -> list[str]:
    k = summary([x for r in results["kubernetes"]["runs"] for x in r])
    lines = [f"Kubernetes source: readiness change in the API → new list at `GET /seeds` in **{ms(k['p50'])}** "
             f"p50, **{ms(k['p99'])}** p99 (n={k['n']})."]
    if "dns" in results:
        d = summary(results["dns"]["samples"])
        lines.append(f"DNS source through CoreDNS with kubeadm's caching (`cache 30`, `ttl 30`): **{secs(d['p50'])}** "
                     f"p50, {secs(d['max'])} max (n={d['n']}): {d['p50'] / k['p50']:.0f}x the watch's p50.")
    if "classic" in results:
        c = summary(results["classic"]["latency"])
        lines.append(f"Classic per-call Endpoints provider: learns of a change only when Cassandra calls "
                     f"`getSeeds()` (start-up, node removal, `nodetool reloadseeds`), so a running node does not "
                     f"converge on its own; each call costs {ms(c['p50'])} p50, a new TLS connection and "
                     f"{human_bytes(results['classic']['bytes_per_call'])}.")
    return lines

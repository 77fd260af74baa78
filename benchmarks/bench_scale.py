"""Scale: one Service with 5,000 endpoints in 50 hand-managed EndpointSlices of 100 endpoints each.

Measures the sidecar's initial sync (process start to first /readyz 200, as a ratio to the same sidecar
on a 3-endpoint Service, alternated in the same run), the change-to-answer time when one slice changes
(the sidecar re-parses every slice and re-runs select() on each event), the in-process cost of those
two steps, and memory.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    AsyncApi,
    Cluster,
    LongPoller,
    kubernetes_env,
    log,
    median,
    mib,
    ms,
    start_sidecar,
    summary,
    table,
)
from seedsvc import selection
from seedsvc.records import Identity
from seedsvc.selection import Policy, select
from seedsvc.sources.kubernetes import watching
from seedsvc.sources.kubernetes.parsing import from_endpoint_slices
from seedsvc_devcluster.processes import rss_bytes

NAMESPACE = "bench-scale"
ZONES = ("zone-a", "zone-b", "zone-c")


def address(n: int) -> str:
    """Loopback-range addresses: only data in the slices here, nothing is sent to them."""
    return f"127.20.{n // 250}.{n % 250 + 1}"


def endpoint(n: int, ready: bool = True) -> dict[str, Any]:
    return {
        "addresses": [address(n)],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
        "targetRef": {"kind": "Pod", "name": f"big-{n}", "namespace": NAMESPACE},
        "zone": ZONES[n % len(ZONES)],
        "nodeName": f"node-{n % 50}",
    }


def make_slice(
    service: str, index: int, first: int, size: int, unready: frozenset[int] = frozenset()
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-{index:03d}", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "intra-node", "port": 7000, "protocol": "TCP"}],
        "endpoints": [endpoint(n, n not in unready) for n in range(first, first + size)],
    }


def headless_without_selector(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"clusterIP": "None", "ports": [{"name": "intra-node", "port": 7000}]}}


def _in_process(slices: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Seconds per call of the per-event work, measured in this process: (median, best) over repeats.

    Uses the source's own view builder (which keeps parsed records per slice and re-parses only a
    slice whose resourceVersion changed) and select(), whose address sort keys are memoised; "cold"
    figures are what the first list (or a relist) costs, "per event" what one changed slice costs.
    """
    policy, identity = Policy(count=3), Identity("big-4999", address(4999))
    one_event = json.dumps({"type": "MODIFIED", "object": slices[0]})
    current = {s["metadata"]["name"]: {**s, "metadata": {**s["metadata"], "resourceVersion": "1"}} for s in slices}

    def timed(fn: Any, loops: int, before: Any = None) -> tuple[float, float]:
        runs = []
        for _ in range(repeats):
            total = 0.0
            for _ in range(loops):
                if before is not None:
                    before()
                t = time.perf_counter()
                fn()
                total += time.perf_counter() - t
            runs.append(total / loops)
        return statistics.median(runs), min(runs)

    results: dict[str, Any] = {
        "decode_event": timed(lambda: json.loads(one_event), 200),
        "parse_all_slices": timed(lambda: from_endpoint_slices(slices), 5),
    }
    builder_cls = getattr(watching, "_ParsedObjects", None)
    if builder_cls is not None:
        builder = builder_cls(watching.endpoint_slices(NAMESPACE, "big"))
        results["view_cold"] = timed(lambda: builder_cls(watching.endpoint_slices(NAMESPACE, "big")).view(current), 3)
        builder.view(current)
        counter = iter(range(2, 10**9))

        def change_one() -> None:  # a MODIFIED event: slice 0 has a new resourceVersion
            first = current["big-000"]
            current["big-000"] = {**first, "metadata": {**first["metadata"], "resourceVersion": str(next(counter))}}

        results["view_event"] = timed(lambda: builder.view(current), 10, before=change_one)
        results["incremental"] = True
    else:  # the source re-parses every object on each event
        whole = timed(lambda: tuple(sorted(from_endpoint_slices(slices).endpoints,
                                           key=lambda e: (e.address, e.pod or ""))), 5)
        results["view_cold"] = results["view_event"] = whole
        results["incremental"] = False
    parsed = from_endpoint_slices(slices).endpoints
    endpoints = tuple(sorted(parsed, key=lambda e: (e.address, e.pod or "")))
    clear = getattr(getattr(selection, "_address_key", None), "cache_clear", None)
    if clear is not None:
        results["select_cold"] = timed(lambda: select(endpoints, policy=policy, identity=identity, now=1000.0), 3,
                                       before=clear)
    select(endpoints, policy=policy, identity=identity, now=1000.0)
    results["select"] = timed(lambda: select(endpoints, policy=policy, identity=identity, now=1000.0), 5)
    results.setdefault("select_cold", results["select"])
    results["endpoints"] = len(endpoints)
    return results


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    sa_dir = cluster.namespace(NAMESPACE)
    assert sa_dir is not None
    total, per_slice = cfg["scale_endpoints"], cfg["scale_endpoints"] // cfg["scale_slices"]
    slices = [make_slice("big", i, i * per_slice, per_slice) for i in range(cfg["scale_slices"])]
    cluster.apply(NAMESPACE, headless_without_selector("big"))
    cluster.apply(NAMESPACE, headless_without_selector("small"))
    t = time.monotonic()
    for obj in slices:
        cluster.apply(NAMESPACE, obj)
    create_s = time.monotonic() - t
    cluster.apply(NAMESPACE, make_slice("small", 0, 0, 3))
    listing = cluster.plane.api(
        "GET", f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
        "?labelSelector=kubernetes.io%2Fservice-name%3Dbig")
    list_bytes = len(json.dumps(listing))
    results: dict[str, Any] = {"endpoints": total, "slices": len(slices), "create_s": create_s,
                               "list_bytes": list_bytes}
    log(f"created {total} endpoints in {len(slices)} slices in {create_s:.1f}s")

    common = {"SEEDSVC_FLAP_GRACE": "0", "POD_NAME": "big-4999", "POD_IP": address(4999)}
    big_env = kubernetes_env(cluster, NAMESPACE, sa_dir, "big") | common
    small_env = kubernetes_env(cluster, NAMESPACE, sa_dir, "small") | common
    big_starts: list[float] = []
    small_starts: list[float] = []
    for i in range(cfg["scale_startups"]):
        for env, out, name in ((small_env, small_starts, "small"), (big_env, big_starts, "big")):
            sidecar = start_sidecar(f"scale-start-{name}-{i}", env, log_dir)
            try:
                out.append(await asyncio.to_thread(sidecar.wait_ready, 120))
                if name == "small" and i == 0:
                    results["rss_small"] = rss_bytes(sidecar.pid)
            finally:
                sidecar.stop()
    results["startup_big"], results["startup_small"] = big_starts, small_starts
    log(f"initial sync: 5000 endpoints {ms(median(big_starts))}, 3 endpoints {ms(median(small_starts))}")

    sidecar = start_sidecar("scale", big_env, log_dir)
    changes: list[float] = []
    try:
        await asyncio.to_thread(sidecar.wait_ready, 120)
        results["rss_big_synced"] = rss_bytes(sidecar.pid)
        seed_ip = address(0)  # big-0: the zone-a seed
        path = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/big-000"
        async with aiohttp.ClientSession() as session, AsyncApi(cluster) as api:
            poller = LongPoller(session, sidecar.url)
            await poller.current()
            await poller.until(lambda s: seed_ip in s, 30)
            for i in range(cfg["scale_changes"]):
                ready = i % 2 == 1
                body = {"endpoints": make_slice("big", 0, 0, per_slice, frozenset() if ready else frozenset({0}))[
                    "endpoints"]}
                await api.request("PATCH", path, body, content_type="application/merge-patch+json")
                written = time.monotonic()
                arrived, _ = await poller.until((lambda s: seed_ip in s) if ready else (lambda s: seed_ip not in s), 30)
                changes.append(arrived - written)
                await asyncio.sleep(0.05)
        results["rss_big_after_changes"] = rss_bytes(sidecar.pid)
    finally:
        sidecar.stop()
    results["changes"] = changes
    log(f"slice change → /seeds: p50 {ms(summary(changes)['p50'])}")
    results["in_process"] = await asyncio.to_thread(_in_process, slices, cfg["select_repeats"])
    return results


def report(results: dict[str, Any]) -> str:
    big, small = median(results["startup_big"]), median(results["startup_small"])
    ch = summary(results["changes"])
    ip = results["in_process"]
    per_event = ip["view_event"][1] + ip["select"][1]
    return "\n".join([
        f"A selector-less headless Service with {results['endpoints']:,} endpoints in {results['slices']} "
        "hand-managed EndpointSlices (100 endpoints each, 3 zones, created directly through the API: "
        f"{results['create_s']:.1f} s for all of them; one LIST of them is {mib(results['list_bytes'])} of "
        "JSON). The sidecar runs as pod `big-4999`, count 3, `SEEDSVC_FLAP_GRACE=0`.\n",
        table(["measure", "value"], [
            [f"initial sync: process start → first `/readyz` 200, {results['endpoints']:,} endpoints "
             f"(median of {len(results['startup_big'])})", ms(big)],
            ["the same, 3-endpoint Service (alternated with the above)", ms(small)],
            ["ratio 5,000 / 3 endpoints", f"{big / small:.2f}x"],
            [f"slice change → new list at `/seeds` (PATCH of one 100-endpoint slice flipping a seed's "
             f"readiness; n={ch['n']}) p50 / p90 / p99",
             f"{ms(ch['p50'])} / {ms(ch['p90'])} / {ms(ch['p99'])}"],
            ["RSS, 3-endpoint Service / 5,000 endpoints synced / after the changes",
             f"{mib(results.get('rss_small', float('nan')))} / {mib(results['rss_big_synced'])} / "
             f"{mib(results['rss_big_after_changes'])}"],
        ]),
        "",
        f"Per-event work measured in-process on the same {ip['endpoints']:,} records, with the sidecar's own "
        "code (timing loops repeated; median and best, the best being the least disturbed by other jobs):\n",
        table(["step", "median", "best"], [
            ["decode one watch event (one 100-endpoint slice, `json.loads`)", ms(ip["decode_event"][0]),
             ms(ip["decode_event"][1])],
            ["parse all 50 slices into records (`from_endpoint_slices`)", ms(ip["parse_all_slices"][0]),
             ms(ip["parse_all_slices"][1])],
            ["the source's view after the first list (parse everything, sort)", ms(ip["view_cold"][0]),
             ms(ip["view_cold"][1])],
            ["the source's view after one MODIFIED slice"
             + (" (only that slice re-parsed)" if ip.get("incremental") else " (everything re-parsed)"),
             ms(ip["view_event"][0]), ms(ip["view_event"][1])],
            ["`select()`, first call (address keys not yet memoised)", ms(ip["select_cold"][0]),
             ms(ip["select_cold"][1])],
            ["`select()`, per event (merge, rank, zones, damping)", ms(ip["select"][0]), ms(ip["select"][1])],
        ]),
        "",
        f"Per event the sidecar spends about {ms(per_event)} of CPU at this size (view after one changed "
        f"slice + `select()`, best runs), against {ms(ch['p50'])} from the PATCH to the answer (p50). History: "
        "the first full run of this suite (2026-11-27 10:11 UTC, same kind of 2-core machine, under heavy "
        "background load) measured 193 ms p50 / 555 ms p99 from a slice change to `/seeds` and about 172 ms "
        "of CPU per event, when every event re-parsed all 50 slices and `select()` parsed every address "
        "with `ipaddress` (about 25-30 µs per endpoint each); commit 5f7a962 made the view incremental and "
        "memoised the address keys, and the figures above are after that change.",
    ])


def headlines(results: dict[str, Any]) -> list[str]:
    ch = summary(results["changes"])
    ip = results["in_process"]
    return [f"5,000 endpoints in 50 slices: initial sync {ms(median(results['startup_big']))} "
            f"({median(results['startup_big']) / median(results['startup_small']):.2f}x a 3-endpoint Service), "
            f"slice change → `/seeds` {ms(ch['p50'])} p50 / {ms(ch['p99'])} p99, RSS "
            f"{mib(results['rss_big_synced'])}; about {ms(ip['view_event'][1] + ip['select'][1])} of CPU per "
            "event in the sidecar."]

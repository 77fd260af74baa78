"""Several DCs through the shim: a peer DC's seed change → a running node's Gossiper in the other DC.

Two DCs in two namespaces of the suite's control plane. ``dc1`` is data and one real sidecar (datacenter
dc1, no peers): its hand-managed EndpointSlice lists ``ring-0`` and ``ring-1`` (127.0.61.11-12, nothing
listens there). ``dc2`` is one real Cassandra 5.0 node (127.0.61.1, pod ``ring-0``, the only pod of its
DC) with the shim (``live_reload``) and its own real sidecar (datacenter dc2, the bootstrap DC, peer dc1
= dc1's sidecar). While dc1 has no ready pod, the node founds the cluster (it seeds itself: a node
served only unreachable remote seeds could not start, "Unable to gossip with any peers"); then dc1's
pods turn ready and, a peer seed being known, the node is served dc1's seeds alone. Each change flips
dc1's ``ring-1`` readiness, so dc1's seed set (``scope=datacenter``) alternates between one and two
addresses. The time runs from the completion of the PUT in dc1's namespace to the shim's "Gossiper
reloaded seeds" line in the dc2 node's log (polled every 5 ms): dc1's watch and selection, dc2's
long-poll of dc1 and composition, the shim's long-poll of its sidecar and the in-process
``Gossiper.reloadSeeds`` call. Flap grace 0, so an unready seed leaves at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_gossiper import SHIM_JAR, reloads
from benchmarks.common import AsyncApi, Cluster, kubernetes_env, log, ms, start_sidecar, summary, table
from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import k8s_objects as k8s

SERVICE = "ring"
NODE_IP = "127.0.61.1"
DC1_IPS = ("127.0.61.11", "127.0.61.12")


def dc1_slice(second_ready: bool) -> dict[str, Any]:
    return k8s.endpoint_slice(SERVICE, SERVICE, [("ring-0", DC1_IPS[0], True), ("ring-1", DC1_IPS[1], second_ready)])


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    if not SHIM_JAR.is_file():
        raise RuntimeError(f"{SHIM_JAR} is missing: cd java-shim && mvn -B -q -ntp package -DskipTests")
    await asyncio.to_thread(harness.ensure_distribution)
    namespaces = {dc: f"bench-multidc-{dc}" for dc in ("dc1", "dc2")}
    sa_dirs = {dc: cluster.namespace(ns) for dc, ns in namespaces.items()}
    cluster.apply(namespaces["dc1"], k8s.endpoint_slice(SERVICE, SERVICE, [("ring-0", DC1_IPS[0], False)]))
    cluster.apply(namespaces["dc2"], k8s.endpoint_slice(SERVICE, SERVICE, [("ring-0", NODE_IP, True)]))
    # dc1 never falls back to its unready pods (rule 8) during the run: its seed set is what the PUTs make it.
    common = {"SEEDSVC_FLAP_GRACE": "0", "SEEDSVC_RESTART_FALLBACK_AFTER": "3600"}
    dc1_dir, dc2_dir = sa_dirs["dc1"], sa_dirs["dc2"]
    assert dc1_dir is not None and dc2_dir is not None
    dc1 = start_sidecar("multidc-dc1", kubernetes_env(cluster, namespaces["dc1"], dc1_dir, SERVICE) | common | {
        "POD_NAME": "ring-0", "POD_IP": DC1_IPS[0], "SEEDSVC_DATACENTER": "dc1"}, log_dir)
    dc2 = start_sidecar("multidc-dc2", kubernetes_env(cluster, namespaces["dc2"], dc2_dir, SERVICE) | common | {
        "POD_NAME": "ring-0", "POD_IP": NODE_IP, "SEEDSVC_DATACENTER": "dc2", "SEEDSVC_PEERS": f"dc1={dc1.url}",
        "SEEDSVC_BOOTSTRAP_DATACENTER": "dc2"},
        log_dir)
    node = harness.CassandraNode(
        NODE_IP, log_dir / "multidc-node", cluster_name="bench-multidc", snitch="GossipingPropertyFileSnitch",
        dc="dc2", seed_provider_class="io.seedsvc.cassandra.SidecarSeedProvider",
        seed_provider_params={"url": f"{dc2.url}/seeds", "cache_file": str(log_dir / "multidc-node.cache"),
                              "live_reload": "true"},
        extra_classpath=[SHIM_JAR],
    )
    path = f"/apis/discovery.k8s.io/v1/namespaces/{namespaces['dc1']}/endpointslices/{SERVICE}"
    samples: list[float] = []
    startup = 0.0
    try:
        dc2.wait_ready()
        if not dc1.process.is_running():
            raise RuntimeError(f"dc1's sidecar exited: {dc1.log_path.read_text()[-2000:]}")
        await asyncio.to_thread(node.start)
        startup = await asyncio.to_thread(node.wait_for_cql, 240.0)
        log(f"multidc: dc2 node up in {startup:.1f}s")
        async with AsyncApi(cluster) as api:
            before = reloads(node)
            await api.request("PUT", path, dc1_slice(True))
            await _reloaded(node, before)
            second_ready = True
            for _ in range(cfg["multidc_changes"]):
                second_ready = not second_ready
                before = reloads(node)
                await api.request("PUT", path, dc1_slice(second_ready))
                written = time.monotonic()
                await _reloaded(node, before)
                samples.append(time.monotonic() - written)
    finally:
        await asyncio.to_thread(node.stop)
        dc2.stop()
        dc1.stop()
    stats = summary(samples)
    log(f"multidc: p50 {ms(stats['p50'])} over {len(samples)} changes")
    return {"samples": samples, "summary": stats, "node_startup_s": startup}


async def _reloaded(node: harness.CassandraNode, before: int) -> None:
    deadline = time.monotonic() + 30
    while reloads(node) <= before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no Gossiper reload within 30 s; see {node.log_path}")
        await asyncio.sleep(0.005)


def headlines(result: dict[str, Any]) -> list[str]:
    s = result["summary"]
    return [
        f"Several DCs: a peer DC's seed change → a running node's Gossiper in the other DC: "
        f"**{ms(s['p50'])}** p50, {ms(s['p99'])} p99 (n={len(result['samples'])})."
    ]


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = [[len(result["samples"]), ms(s["p50"]), ms(s["p90"]), ms(s["p99"]), ms(s["max"]),
             f"{result['node_startup_s']:.1f} s"]]
    return "\n".join([(__doc__ or "").split("\n\n", 1)[1].strip(), "",
                      table(["changes", "p50", "p90", "p99", "max", "node start-up to CQL"], rows)])

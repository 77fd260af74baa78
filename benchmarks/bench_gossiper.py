"""End to end through the shim: API change → a running Cassandra node's Gossiper holds the new seeds.

One real Cassandra 5.0 node (127.0.60.1) plays pod ``ring-0`` with the shim (``live_reload``) pointing at
its own real sidecar (Kubernetes source, in-cluster credentials). The Service's hand-managed
EndpointSlice lists ``ring-0`` and a peer ``ring-1`` (127.0.60.2, data only: nothing listens there).
Each change flips ``ring-1``'s readiness, so the node is served ``[127.0.60.2]`` or, with no ready
peer, itself (the bootstrap rule). The time is taken from the completion of the slice PUT to the
shim's "Gossiper reloaded seeds" line appearing in the node's log (polled every 5 ms): the watch, the
sidecar's select(), the shim's long-poll answer and the in-process ``Gossiper.reloadSeeds`` call. The
slice is written directly, so unlike the convergence section's readiness flips there is no
EndpointSlice controller hop; changes follow each other back to back (the case a minimum poll interval
would hurt).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.common import AsyncApi, Cluster, kubernetes_env, log, ms, start_sidecar, summary, table
from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import k8s_objects as k8s

NAMESPACE = "bench-gossiper"
SERVICE = "ring"
NODE_IP, PEER_IP = "127.0.60.1", "127.0.60.2"
SHIM_JAR = Path(__file__).resolve().parents[1] / "java-shim" / "target" / "seedsvc-cassandra-shim.jar"
RELOADED = "Gossiper reloaded seeds"


def ring_slice(peer_ready: bool) -> dict[str, Any]:
    return k8s.endpoint_slice(SERVICE, SERVICE, [("ring-0", NODE_IP, True), ("ring-1", PEER_IP, peer_ready)])


def reloads(node: harness.CassandraNode) -> int:
    return node.log_path.read_text(errors="replace").count(RELOADED) if node.log_path.exists() else 0


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    if not SHIM_JAR.is_file():
        raise RuntimeError(f"{SHIM_JAR} is missing: cd java-shim && mvn -B -q -ntp package -DskipTests")
    await asyncio.to_thread(harness.ensure_distribution)
    sa_dir = cluster.namespace(NAMESPACE)
    assert sa_dir is not None
    slice_ = k8s.endpoint_slice(SERVICE, SERVICE, [("ring-0", NODE_IP, True)])
    cluster.apply(NAMESPACE, slice_)
    env = kubernetes_env(cluster, NAMESPACE, sa_dir, SERVICE) | {
        "POD_NAME": "ring-0",
        "POD_IP": NODE_IP,
        "SEEDSVC_FLAP_GRACE": "0",
    }
    sidecar = start_sidecar("gossiper", env, log_dir)
    node = harness.CassandraNode(
        NODE_IP,
        log_dir / "gossiper-node",
        seed_provider_class="io.seedsvc.cassandra.SidecarSeedProvider",
        seed_provider_params={
            "url": f"{sidecar.url}/seeds",
            "cache_file": str(log_dir / "gossiper-node.cache"),
            "live_reload": "true",
        },
        extra_classpath=[SHIM_JAR],
    )
    path = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices/{SERVICE}"
    samples: list[float] = []
    startup = 0.0
    try:
        sidecar.wait_ready()
        await asyncio.to_thread(node.start)
        startup = await asyncio.to_thread(node.wait_for_cql, 240.0)
        log(f"gossiper: node up in {startup:.1f}s")
        async with AsyncApi(cluster) as api:
            peer_ready = False
            for _ in range(cfg["gossiper_changes"]):
                peer_ready = not peer_ready
                before = reloads(node)
                current = await api.request("GET", path)
                body = ring_slice(peer_ready)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await api.request("PUT", path, body)
                written = time.monotonic()
                deadline = written + 30
                while reloads(node) <= before:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no Gossiper reload within 30 s; see {node.log_path}")
                    await asyncio.sleep(0.005)
                samples.append(time.monotonic() - written)
    finally:
        await asyncio.to_thread(node.stop)
        sidecar.stop()
    stats = summary(samples)
    log(f"gossiper: p50 {ms(stats['p50'])} over {len(samples)} changes")
    return {"samples": samples, "summary": stats, "node_startup_s": startup}


def headlines(result: dict[str, Any]) -> list[str]:
    s = result["summary"]
    return [
        f"With the shim, slice change → a running Cassandra node's Gossiper holds the new seeds: "
        f"**{ms(s['p50'])}** p50, {ms(s['p99'])} p99 (n={len(result['samples'])})."
    ]


def report(result: dict[str, Any]) -> str:
    s = result["summary"]
    return "\n".join(
        [
            (__doc__ or "").split("\n\n", 1)[1].strip(),
            "",
            table(
                ["changes", "p50", "p90", "p99", "max", "node start-up to CQL"],
                [
                    [
                        len(result["samples"]),
                        ms(s["p50"]),
                        ms(s["p90"]),
                        ms(s["p99"]),
                        ms(s["max"]),
                        f"{result['node_startup_s']:.1f} s",
                    ]
                ],
            ),
        ]
    )

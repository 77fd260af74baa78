"""Footprint of one sidecar process: start-up time to the first /readyz 200, RSS and CPU when idle and
under churn (one readiness change every 0.25 s, followed by a long-polling client as the shim does)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import (
    PYTHON,
    ROOT,
    AsyncApi,
    Cluster,
    LongPoller,
    cpu_seconds,
    kubernetes_env,
    log,
    median,
    mib,
    ms,
    start_sidecar,
    summary,
    table,
)
from seedsvc_devcluster.processes import hwm_bytes, rss_bytes

NAMESPACE = "bench-foot"
CHURN_INTERVAL = 0.25


def _python_baseline() -> tuple[float, float]:
    """Wall time of a bare interpreter, and of an interpreter importing the sidecar's modules."""
    t = time.monotonic()
    subprocess.run([PYTHON, "-c", "pass"], check=True, cwd=ROOT, timeout=30)
    bare = time.monotonic() - t
    t = time.monotonic()
    subprocess.run([PYTHON, "-c", "import seedsvc_sidecar.cli, seedsvc_sidecar.service, seedsvc.sources.kubernetes"],
                   check=True, cwd=ROOT, timeout=30)
    return bare, time.monotonic() - t


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    sa_dir = cluster.namespace(NAMESPACE)
    assert sa_dir is not None
    pods = {p["metadata"]["name"]: p["status"]["podIP"] for p in cluster.statefulset(NAMESPACE, "cassandra", 3)}
    env = kubernetes_env(cluster, NAMESPACE, sa_dir, "cassandra", POD_NAME="cassandra-2",
                         POD_IP=pods["cassandra-2"], SEEDSVC_FLAP_GRACE="0", CASSANDRA_SERVICE_NUM_SEEDS="10")
    results: dict[str, Any] = {}
    # Each start-up is paired with the two interpreter baselines right before it, so a burst of
    # background load hits the pair alike; the report gives medians of the per-pair ratios.
    startups, bare, imports = [], [], []
    for i in range(cfg["startup_runs"]):
        b, imp = await asyncio.to_thread(_python_baseline)
        bare.append(b)
        imports.append(imp)
        sidecar = start_sidecar(f"footprint-start-{i}", env, log_dir)
        try:
            startups.append(await asyncio.to_thread(sidecar.wait_ready))
        finally:
            sidecar.stop()
    results["startup"], results["python_bare"], results["python_imports"] = startups, bare, imports
    log(f"start-up to /readyz 200: median {ms(median(startups))}")

    sidecar = start_sidecar("footprint", env, log_dir)
    try:
        await asyncio.to_thread(sidecar.wait_ready)
        await asyncio.sleep(2)  # past start-up work
        rss0, cpu0, t0 = rss_bytes(sidecar.pid), cpu_seconds(sidecar.pid), time.monotonic()
        await asyncio.sleep(cfg["idle_s"])
        cpu1, t1 = cpu_seconds(sidecar.pid), time.monotonic()
        results["idle"] = {"rss_start": rss0, "rss_end": rss_bytes(sidecar.pid), "cpu_s": cpu1 - cpu0,
                           "wall_s": t1 - t0}
        log(f"idle: RSS {mib(results['idle']['rss_end'])}, CPU {100 * (cpu1 - cpu0) / (t1 - t0):.2f}%")

        changes = 0
        flippable = ["cassandra-0", "cassandra-1"]
        ready = dict.fromkeys(flippable, True)
        async with aiohttp.ClientSession() as session, AsyncApi(cluster) as api:
            poller = LongPoller(session, sidecar.url)
            await poller.current()
            answers = 0

            async def follow(stop: asyncio.Event) -> None:
                nonlocal answers
                while not stop.is_set():
                    await poller.next_change(2)
                    answers += 1

            stop = asyncio.Event()
            follower = asyncio.create_task(follow(stop))
            cpu0, t0 = cpu_seconds(sidecar.pid), time.monotonic()
            deadline = t0 + cfg["churn_s"]
            while time.monotonic() < deadline:
                pod = flippable[changes % 2]
                ready[pod] = not ready[pod]
                await api.set_pod_ready(NAMESPACE, pod, ready[pod])
                changes += 1
                await asyncio.sleep(CHURN_INTERVAL)
            cpu1, t1 = cpu_seconds(sidecar.pid), time.monotonic()
            stop.set()
            await asyncio.wait_for(follower, 10)
            for pod, is_ready in ready.items():
                if not is_ready:
                    await api.set_pod_ready(NAMESPACE, pod, True)
        results["churn"] = {"rss_end": rss_bytes(sidecar.pid), "hwm": hwm_bytes(sidecar.pid), "cpu_s": cpu1 - cpu0,
                            "wall_s": t1 - t0, "changes": changes, "answers": answers}
        log(f"churn: {changes} changes, CPU {100 * (cpu1 - cpu0) / (t1 - t0):.1f}%")
    finally:
        sidecar.stop()
    results["controlplane_rss"] = cluster.plane.rss_bytes()
    return results


def report(results: dict[str, Any]) -> str:
    st = summary(results["startup"])
    idle, churn = results["idle"], results["churn"]
    idle_pct = 100 * idle["cpu_s"] / idle["wall_s"]
    churn_pct = 100 * churn["cpu_s"] / churn["wall_s"]
    cp = results.get("controlplane_rss", {})
    ratio = median([s / i for s, i in zip(results["startup"], results["python_imports"], strict=True)])
    return "\n".join([
        "One `seedsvc serve` process, Kubernetes source, 3-pod StatefulSet, in-cluster credentials.\n",
        table(["measure", "value"], [
            [f"start-up: process start → first `/readyz` 200 (median of {st['n']}; min / max)",
             f"{ms(st['p50'])} ({ms(st['min'])} / {ms(st['max'])})"],
            ["for comparison: bare `python -c pass` (median)", ms(median(results["python_bare"]))],
            ["for comparison: a Python that only imports the sidecar's modules (median)",
             ms(median(results["python_imports"]))],
            [f"idle: RSS after {idle['wall_s']:.0f} s", mib(idle["rss_end"])],
            ["idle: CPU", f"{idle_pct:.2f}% of one core ({1000 * idle['cpu_s']:.0f} ms CPU in "
                          f"{idle['wall_s']:.0f} s)"],
            [f"churn: {churn['changes']} readiness changes in {churn['wall_s']:.0f} s, "
             f"{churn['answers']} long-poll answers: CPU", f"{churn_pct:.1f}% of one core"],
            ["churn: CPU per change (watch event, parse, select, answer)",
             ms(churn["cpu_s"] / max(1, churn["changes"]))],
            ["churn: RSS at the end / peak RSS (VmHWM)", f"{mib(churn['rss_end'])} / {mib(churn['hwm'])}"],
        ]),
        "",
        f"Start-up to ready is {ratio:.2f}x the time a Python takes just to import the sidecar's modules "
        "(median of the per-run ratios, each start-up paired with an import run right before it): the "
        "interpreter and imports (aiohttp above all) dominate; listing the Service and serving take the "
        "rest. For scale: the control plane's own processes on this machine had "
        + ", ".join(f"{name} {mib(size)}" for name, size in cp.items()) + " RSS.",
    ])


def headlines(results: dict[str, Any]) -> list[str]:
    idle, churn = results["idle"], results["churn"]
    return [f"Footprint: **{mib(idle['rss_end'])} RSS**, {100 * idle['cpu_s'] / idle['wall_s']:.2f}% CPU idle, "
            f"{100 * churn['cpu_s'] / churn['wall_s']:.1f}% at {churn['changes'] / churn['wall_s']:.0f} changes/s; "
            f"start-up to ready {ms(median(results['startup']))} (median), about the time Python takes to import "
            "its modules."]

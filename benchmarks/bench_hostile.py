"""The pod's own caller during a flood: `GET /seeds` latency and RSS while 5,000 hostile connections
(slowloris, silent, long-polls) hit the sidecar, and RSS after they leave.

The sidecar trusts only 127.0.0.1 here (``SEEDSVC_HTTP_TRUSTED_NETWORKS=127.0.0.1/32``), so the
attack, from other 127.x.y.z addresses, counts as coming from other pods, and the measured caller on
127.0.0.1 is the pod's own Cassandra shim. The caller opens a new connection per request, as the
shim does, so accept-queue delays show up in its latency. Bounded: at most ``hostile_s`` seconds of
attack plus a few seconds each for the baseline and the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    LOOPBACK,
    Cluster,
    log,
    machine,
    mib,
    ms,
    parse_metrics,
    start_sidecar,
    summary,
    table,
)
from seedsvc_devcluster.processes import rss_bytes

SEEDS = "10.0.1.17,10.0.2.9,10.0.3.4"
CALL_INTERVAL = 0.05  # the measured caller: 20 requests a second, far more than a shim makes
MIX = {"slowloris": 0.4, "silent": 0.3, "long-poll": 0.3}
COUNTED = {"seedsvc_http_refused_total", "seedsvc_http_timeouts_total", "seedsvc_http_accept_errors_total"}


class Caller(threading.Thread):
    """The pod's own caller: GET /seeds on a fresh connection every CALL_INTERVAL, timing each."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[str, float]] = []  # (phase, seconds)
        self.errors: dict[str, int] = {}
        self.phase = "baseline"
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            phase = self.phase
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=10)
                connection.request("GET", "/seeds")
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if response.status != 200 or body.decode() != SEEDS:
                    raise RuntimeError(f"status {response.status}")
                self.samples.append((phase, time.perf_counter() - started))
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                key = f"{phase}: {type(exc).__name__}"
                self.errors[key] = self.errors.get(key, 0) + 1
            self.stopping.wait(CALL_INTERVAL)

    def latencies(self, phase: str) -> list[float]:
        return [seconds for name, seconds in self.samples if name == phase]


def source_address(index: int) -> str:
    return f"127.{index // 60000 + 1}.{index // 250 % 240 + 1}.{index % 250 + 2}"


async def attack(port: int, count: int, duration: float) -> dict[str, int]:
    """Open ``count`` hostile connections in the MIX and keep them misbehaving for ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    # Interleaved, so each kind gets its share of the slots below the cap too.
    pattern = [kind for kind, share in MIX.items() for _ in range(round(10 * share))]
    kinds = [pattern[index % len(pattern)] for index in range(count)]
    sockets: list[tuple[str, socket.socket]] = []
    opened = {kind: 0 for kind in MIX}
    deadline = time.monotonic() + duration
    try:
        for index, kind in enumerate(kinds):
            if time.monotonic() > deadline:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((source_address(index), 0))
            try:
                async with asyncio.timeout(5):
                    await loop.sock_connect(sock, (LOOPBACK, port))
                if kind == "slowloris":
                    sock.send(b"GET /seeds HTTP/1.1\r\n")
                elif kind == "long-poll":
                    sock.send(b"GET /seeds?wait=300 HTTP/1.1\r\nHost: x\r\n\r\n")
            except (OSError, TimeoutError):
                sock.close()
                continue
            sockets.append((kind, sock))
            opened[kind] += 1
        while time.monotonic() < deadline:
            # Slowloris: one more header byte per second each, never the blank line.
            for kind, sock in sockets:
                if kind == "slowloris":
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
            await asyncio.sleep(1.0)
    finally:
        for _, sock in sockets:
            sock.close()
    return opened


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard) if hard != resource.RLIM_INFINITY else needed,
                                                    hard))


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    count, duration = cfg["hostile_connections"], cfg["hostile_s"]
    raise_fd_limit(count + 1000)
    sidecar = start_sidecar("hostile", {"SEEDSVC_SOURCE": "static", "CASSANDRA_SEEDS": SEEDS,
                                        "SEEDSVC_HTTP_TRUSTED_NETWORKS": "127.0.0.1/32"}, log_dir)
    caller = Caller(sidecar.port)
    rss: dict[str, float] = {}
    try:
        await asyncio.to_thread(sidecar.wait_ready)
        caller.start()
        await asyncio.sleep(cfg["hostile_baseline_s"])
        rss["before"] = rss_bytes(sidecar.pid)
        caller.phase = "attack"
        peak = [rss["before"]]

        async def sample_rss() -> None:
            while True:
                peak.append(rss_bytes(sidecar.pid))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample_rss())
        try:
            opened = await attack(sidecar.port, count, duration)
        finally:
            sampler.cancel()
        rss["peak"] = max(peak)
        caller.phase = "after"
        await asyncio.sleep(cfg["hostile_recovery_s"])
        rss["after"] = rss_bytes(sidecar.pid)
        caller.stopping.set()
        await asyncio.to_thread(caller.join, 15)
        _, text, _ = sidecar.get("/metrics")
        counters = {name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}": value
                    for name, labels, value in parse_metrics(text.decode(), COUNTED) if value}
    finally:
        caller.stopping.set()
        sidecar.stop()
    log(f"hostile: caller p99 {ms(summary(caller.latencies('attack'))['p99'])} under attack, "
        f"RSS {mib(rss['before'])} → {mib(rss['peak'])} → {mib(rss['after'])}")
    load = machine()["load average at start"]  # read now: the load right after the attack
    return {
        "connections": count, "duration_s": duration, "opened": opened, "rss": rss, "counters": counters,
        "latency": {phase: summary(caller.latencies(phase)) for phase in ("baseline", "attack", "after")},
        "errors": caller.errors, "load_after": load,
    }


def report(results: dict[str, Any]) -> str:
    latency, rss = results["latency"], results["rss"]
    rows = [[phase, f"{latency[phase]['n']:.0f}", ms(latency[phase]["p50"]), ms(latency[phase]["p99"]),
             ms(latency[phase]["max"])] for phase in ("baseline", "attack", "after")]
    opened = ", ".join(f"{count} {kind}" for kind, count in results["opened"].items())
    errors = ", ".join(f"{key}: {value}" for key, value in results["errors"].items()) or "none"
    counters = ", ".join(f"`{key}` {value:.0f}" for key, value in results["counters"].items()) or "none"
    return "\n".join([
        f"{results['connections']:,} hostile connections from other loopback addresses for "
        f"{results['duration_s']} s ({opened} connected), against default limits; the pod's own caller on "
        f"127.0.0.1 asks `GET /seeds` on a new connection every {CALL_INTERVAL * 1000:.0f} ms throughout. "
        f"Load average after the run: {results['load_after']}.\n",
        table(["phase", "caller requests", "p50", "p99", "max"], rows),
        "",
        f"Caller errors: {errors}. RSS of the sidecar: {mib(rss['before'])} before, {mib(rss['peak'])} at the "
        f"peak, {mib(rss['after'])} after the attack ended. Server counters: {counters}.",
    ])


def headlines(results: dict[str, Any]) -> list[str]:
    attack, rss = results["latency"]["attack"], results["rss"]
    failed = sum(results["errors"].values())
    return [f"During {results['connections']:,} hostile connections the pod's own `/seeds` caller saw p50 "
            f"{ms(attack['p50'])}, p99 {ms(attack['p99'])}, {failed} failures; RSS {mib(rss['before'])} → "
            f"{mib(rss['peak'])} → {mib(rss['after'])} after."]

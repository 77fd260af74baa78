"""`GET /seeds` latency and throughput on loopback under concurrent load, as a ratio to nginx serving the
same bytes from a file, measured alternately in the same run with the same load generator (wrk).

nginx and wrk come from Debian; when missing they are installed with
``apt-get update && apt-get install -y nginx-light wrk`` (as root), else this benchmark says how.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import LOOPBACK, Cluster, log, median, ms, start_sidecar, table, wait_port
from seedsvc_devcluster.ports import free_port

SEEDS = "10.0.1.17,10.0.2.9,10.0.3.4"
INSTALL = "apt-get update && apt-get install -y nginx-light wrk"


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk")
               if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"{', '.join(missing)} missing; install with: sudo sh -c '{INSTALL}'")
    log(f"installing {', '.join(missing)}: {INSTALL}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True, env=env, timeout=600)


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(directory: Path, body: bytes) -> tuple[subprocess.Popen[bytes], int]:
    """nginx with one worker (the sidecar is one single-threaded process), serving `body` at /seeds."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / "seeds").write_bytes(body)
    (directory / "seeds").chmod(0o644)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {LOOPBACK}:{port};
        root {directory};
        location = /seeds {{ default_type text/plain; }}
    }}
}}
""")
    process = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(directory)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    return float(match[1]) * _UNIT[match[2]]


def wrk(url: str, connections: int, duration: int) -> dict[str, float]:
    """One bounded wrk run with one thread; latency percentiles and requests/s."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    result: dict[str, float] = {}
    for q in ("50", "90", "99"):
        match = re.search(rf"^\s+{q}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{q}"] = _seconds(match[1]) if match else float("nan")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match[1]) if match else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors[1]) if errors else 0.0
    return result


async def run(cluster: Cluster, cfg: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    await asyncio.to_thread(ensure_tools)
    # The static source: the /seeds handler is the same whatever the source, and nothing changes the
    # list during the run.
    sidecar = start_sidecar("http", {"SEEDSVC_SOURCE": "static", "CASSANDRA_SEEDS": SEEDS}, log_dir)
    tmp = Path(tempfile.mkdtemp(prefix="seedsvc-nginx-"))
    nginx = None
    results: dict[str, Any] = {"levels": {}}
    try:
        await asyncio.to_thread(sidecar.wait_ready)
        status, body, _ = sidecar.get("/seeds")
        assert status == 200 and body == SEEDS.encode(), (status, body)
        nginx, nginx_port = start_nginx(tmp, body)
        results["body_bytes"] = len(body)
        urls = {"sidecar": f"{sidecar.url}/seeds", "nginx": f"http://{LOOPBACK}:{nginx_port}/seeds"}
        for connections in cfg["http_connections"]:
            level: dict[str, list[dict[str, float]]] = {"sidecar": [], "nginx": []}
            for run_index in range(cfg["http_runs"]):
                # Alternate which goes first, so drift in background load hits both alike.
                order = ("sidecar", "nginx") if run_index % 2 == 0 else ("nginx", "sidecar")
                for name in order:
                    level[name].append(await asyncio.to_thread(wrk, urls[name], connections, cfg["http_duration_s"]))
                    await asyncio.sleep(0.5)
            results["levels"][str(connections)] = level
            log(f"/seeds c={connections}: sidecar {median([r['rps'] for r in level['sidecar']]):.0f} req/s, "
                f"nginx {median([r['rps'] for r in level['nginx']]):.0f} req/s")
    finally:
        sidecar.stop()
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    results["duration_s"] = cfg["http_duration_s"]
    results["runs"] = cfg["http_runs"]
    return results


def report(results: dict[str, Any]) -> str:
    rows = []
    for connections, level in results["levels"].items():
        s = {name: {k: median([r[k] for r in runs]) for k in ("p50", "p90", "p99", "rps")}
             for name, runs in level.items()}
        rows.append([connections, f"{s['sidecar']['rps']:,.0f}", f"{s['nginx']['rps']:,.0f}",
                     f"{s['sidecar']['rps'] / s['nginx']['rps']:.2f}",
                     f"{ms(s['sidecar']['p50'])} / {ms(s['sidecar']['p99'])}",
                     f"{ms(s['nginx']['p50'])} / {ms(s['nginx']['p99'])}",
                     f"{s['sidecar']['p50'] / s['nginx']['p50']:.1f}x / "
                     f"{s['sidecar']['p99'] / s['nginx']['p99']:.1f}x"])
        bad = sum(r["non2xx"] for runs in level.values() for r in runs)
        if bad:
            rows[-1].append(f"{bad:.0f} non-2xx!")
    return "\n".join([
        f"`wrk -t1 -cN -d{results['duration_s']}s --latency` (one load thread, keep-alive) against the sidecar's "
        f"`GET /seeds` ({results['body_bytes']} bytes, text) and against nginx (one worker, Debian's "
        "nginx-light) serving the same bytes from a file, alternated, "
        f"{results['runs']} run(s) each; medians over runs. The load generator shares the 2 cores with the "
        "server under test. wrk measures latency from when it sent each request (no coordinated-omission "
        "correction), so treat p99 as indicative.\n",
        table(["connections", "sidecar req/s", "nginx req/s", "throughput ratio (sidecar/nginx)",
               "sidecar p50 / p99", "nginx p50 / p99", "latency ratio p50 / p99"], rows),
        "",
        "The Java shim makes a handful of requests per node (start-up, then one long-poll per change or per "
        "5 minutes), so even the slowest row is thousands of times the load a real cluster puts on a sidecar.",
    ])


def headlines(results: dict[str, Any]) -> list[str]:
    out = []
    for connections, level in results["levels"].items():
        side = median([r["rps"] for r in level["sidecar"]])
        ngx = median([r["rps"] for r in level["nginx"]])
        p50 = median([r["p50"] for r in level["sidecar"]])
        out.append(f"{connections} conn: {side:,.0f} req/s ({side / ngx:.2f}x nginx), p50 {ms(p50)}")
    return ["`GET /seeds` under wrk on loopback: " + "; ".join(out) + "."]

"""Run every benchmark and write a Markdown report.

    .venv/bin/python -m benchmarks            # full suite (about 15 minutes on 2 cores)
    .venv/bin/python -m benchmarks --quick    # fewer samples and shorter windows (about 3 minutes)
    .venv/bin/python -m benchmarks --only convergence,http

Writes ``benchmarks/results/report.md`` (and ``raw.json`` with every sample; PNG plots when
matplotlib is importable). One loopback control plane (etcd, kube-apiserver, kube-controller-manager,
CoreDNS with kubeadm's ``cache 30``/``ttl 30``) and the kubelet stand-in serve every benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_apicost,
    bench_convergence,
    bench_fanout,
    bench_footprint,
    bench_gossiper,
    bench_hostile,
    bench_http,
    bench_scale,
)
from benchmarks.common import Cluster, log, machine, table, tool_version

BENCHMARKS = {
    "convergence": bench_convergence,
    "gossiper": bench_gossiper,
    "apicost": bench_apicost,
    "footprint": bench_footprint,
    "scale": bench_scale,
    "http": bench_http,
    "fanout": bench_fanout,
    "hostile": bench_hostile,
}

TITLES = {
    "convergence": "Convergence: API change → new list at `GET /seeds`",
    "gossiper": "With the shim: API change → a running node's Gossiper holds the new seeds",
    "apicost": "API server cost per sidecar",
    "footprint": "Footprint: start-up, memory, CPU",
    "scale": "Scale: 5,000 endpoints in 50 EndpointSlices",
    "http": "`GET /seeds` under load, against nginx",
    "fanout": "API server fan-out: one change, N watchers (JSON and protobuf)",
    "hostile": "The pod's own caller during 5,000 hostile connections",
}

FULL: dict[str, Any] = {
    "conv_runs": 3, "conv_changes_per_run": 40, "conv_deletes": 10, "conv_scales": 10,
    "dns_services": 8, "dns_rounds": 2, "dns_both_ways": True,
    "classic_calls": 200,
    "gossiper_changes": 100,
    "api_watchers": 100, "api_cycle_s": 20, "api_idle_s": 150, "api_churn_s": 60, "api_poll_s": 60,
    "startup_runs": 7, "idle_s": 60, "churn_s": 60,
    "scale_endpoints": 5000, "scale_slices": 50, "scale_changes": 60, "scale_startups": 3,
    "select_repeats": 7,
    "http_runs": 3, "http_duration_s": 5, "http_connections": [1, 16, 64],
    "fanout_watchers": [100, 300, 1000], "fanout_changes": 10,
    "hostile_connections": 5000, "hostile_s": 30, "hostile_baseline_s": 5, "hostile_recovery_s": 15,
}

QUICK: dict[str, Any] = {
    **FULL,
    "conv_runs": 1, "conv_deletes": 3, "conv_scales": 3,
    "dns_services": 6, "dns_rounds": 1, "dns_both_ways": False,
    "classic_calls": 50,
    "gossiper_changes": 20,
    "api_cycle_s": 8, "api_idle_s": 20, "api_churn_s": 8, "api_poll_s": 10,
    "startup_runs": 2, "idle_s": 8, "churn_s": 8,
    "scale_changes": 20, "scale_startups": 1, "select_repeats": 3,
    "http_runs": 1, "http_duration_s": 3, "http_connections": [1, 16],
    "fanout_watchers": [100, 200], "fanout_changes": 4,
    "hostile_s": 15, "hostile_baseline_s": 3, "hostile_recovery_s": 10,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows (about 3 minutes)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write the report to docs/benchmarks.md (what is committed)")
    parser.add_argument("--from-raw", type=Path, metavar="RAW_JSON",
                        help="only re-render the report from a raw.json of an earlier run")
    args = parser.parse_args(argv)
    if args.from_raw is not None:
        return rerender(args.from_raw, args.out, write_docs=args.write_docs)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    cfg = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    started_at = datetime.datetime.now(datetime.UTC)
    facts = machine()
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    durations: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="seedsvc-bench-") as tmp:
        workdir = Path(tmp)
        log("starting the control plane (etcd, kube-apiserver, kube-controller-manager, CoreDNS) ...")
        cluster = Cluster(workdir).start()
        log(f"control plane up in {cluster.startup_seconds:.1f}s")
        try:
            for name in chosen:
                log(f"== {name}")
                t0 = time.monotonic()
                try:
                    results[name] = asyncio.run(BENCHMARKS[name].run(cluster, cfg, workdir / "logs"))
                except Exception as exc:  # one failing benchmark must not lose the others' figures
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    log(f"{name} FAILED: {errors[name]}")
                durations[name] = time.monotonic() - t0
                log(f"{name} took {durations[name]:.0f}s")
        finally:
            cluster.stop()
    elapsed = time.monotonic() - began
    (args.out / "raw.json").write_text(json.dumps({
        "config": cfg, "machine": facts, "results": results, "errors": errors, "durations": durations,
        "quick": args.quick, "started_at": started_at.isoformat(), "elapsed": elapsed,
    }, indent=1, default=str))
    report = render(results, errors, durations, facts, cfg, quick=args.quick, started_at=started_at,
                    elapsed=elapsed)
    write_report(report, results, args.out, write_docs=args.write_docs)
    log(f"report: {args.out / 'report.md'} (suite took {elapsed / 60:.1f} min)")
    return 1 if errors else 0


def write_report(report: str, results: dict[str, Any], out: Path, *, write_docs: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plots = make_plots(results, out)
    full = report + ("\n" + "\n".join(f"![{name}]({name}.png)" for name in plots) + "\n" if plots else "")
    (out / "report.md").write_text(full)
    if write_docs:
        # Plots stay in results/ (not committed); the docs copy carries the tables only.
        docs = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
        docs.write_text(report.rstrip() + "\n")
        log(f"docs copy: {docs}")


def rerender(raw_path: Path, out: Path, *, write_docs: bool) -> int:
    raw = json.loads(raw_path.read_text())
    started_at = datetime.datetime.fromisoformat(raw["started_at"])
    report = render(raw["results"], raw["errors"], raw["durations"], raw["machine"], raw["config"],
                    quick=raw["quick"], started_at=started_at, elapsed=raw["elapsed"])
    write_report(report, raw["results"], out, write_docs=write_docs)
    log(f"report: {out / 'report.md'} (re-rendered from {raw_path})")
    return 0


def render(results: dict[str, Any], errors: dict[str, str], durations: dict[str, float], facts: dict[str, str],
           cfg: dict[str, Any], *, quick: bool, started_at: datetime.datetime, elapsed: float) -> str:
    lines = [
        "# seedsvc benchmarks",
        "",
        f"Run {started_at:%Y-%m-%d %H:%M} UTC, {'`--quick`' if quick else 'full'} suite, "
        f"{elapsed / 60:.1f} minutes in all (" + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()) + ").",
        "Command: `.venv/bin/python -m benchmarks" + (" --quick" if quick else "") + "` (see "
        "`benchmarks/README.md`; every figure below comes from this one run).",
        "",
        "## Machine",
        "",
        table(["", ""], [[k, v] for k, v in facts.items()] + [
            ["nginx", tool_version(["nginx", "-v"])],
            ["wrk", tool_version(["wrk", "-v"])],
        ]),
        "",
        "Everything (control plane, sidecars, load generators, baselines) shares this machine, and other "
        "jobs ran on it at the same time, so absolute figures carry noise; comparisons are given as "
        "ratios measured in the same run, where noise hits both sides. Percentiles are over all samples of "
        "a benchmark; where a benchmark was repeated, the per-run figures and their median are given too.",
        "",
    ]
    heads = []
    for name, module in BENCHMARKS.items():
        if name in results:
            try:
                heads += module.headlines(results[name])
            except Exception as exc:  # a reporting bug must not hide the other sections
                heads.append(f"({name}: could not summarise: {type(exc).__name__}: {exc})")
        elif name in errors:
            heads.append(f"{TITLES[name]}: **not measured** ({errors[name]}).")
    lines += ["## Headlines", ""] + [f"- {h}" for h in heads] + [""]
    for name, module in BENCHMARKS.items():
        if name in results:
            try:
                lines += [f"## {TITLES[name]}", "", module.report(results[name]), ""]
            except Exception as exc:  # a reporting bug must not hide the other sections
                lines += [f"## {name}", "", f"(could not render: {type(exc).__name__}: {exc})", ""]
        elif name in errors:
            lines += [f"## {TITLES[name]}", "", f"**Not measured**: {errors[name]}", ""]
    lines += ["## What these figures do not show", "", *[f"- {item}" for item in LIMITS], ""]
    return "\n".join(lines)


LIMITS = (
    "No real kubelet: readiness changes are written to the pod status directly (as a kubelet does after "
    "its probe), so a real pod's probe timing (`periodSeconds` 10 by default, and `failureThreshold` 3 "
    "failures before it turns unready) comes on top of every convergence figure, for every source alike.",
    "The classic provider's convergence is not measured but modelled: it has none of its own, see the "
    "convergence section; its per-call latency and cost are measured.",
    "100 sidecars are 100 discovery instances in one process, not 100 processes (memory and CPU per "
    "sidecar come from the footprint section, measured on a real process).",
    "Hourly API costs are built from measured per-cycle, per-bookmark and per-change costs and the "
    "configured watch timeout (the formula is given); no benchmark runs for an hour.",
    "The DNS source was measured in A/AAAA mode only (not SRV), with one CoreDNS and no node-local cache; "
    "a NodeLocal DNSCache adds its own TTL on top.",
    "One machine with 2 cores runs everything, including the load generator, next to other jobs (see the "
    "load average): absolute latencies and throughputs are pessimistic, ratios are the figures to compare.",
)


def make_plots(results: dict[str, Any], out: Path) -> list[str]:
    """Optional PNG plots; skipped without a word when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    conv = results.get("convergence")
    if conv:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        k8s_samples = sorted(x * 1000 for r in conv["kubernetes"]["runs"] for x in r)
        dns_samples = sorted(conv["dns"]["samples"])
        for ax, data, unit, title in ((axes[0], k8s_samples, "ms", "Kubernetes source (watch)"),
                                      (axes[1], dns_samples, "s", "DNS source (CoreDNS cache 30, ttl 30)")):
            if data:
                ax.plot(data, [(i + 1) / len(data) for i in range(len(data))])
            ax.set_xlabel(f"change → /seeds answer ({unit})")
            ax.set_ylabel("fraction of changes")
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "convergence.png", dpi=100)
        plt.close(fig)
        made.append("convergence")
    return made


if __name__ == "__main__":
    sys.exit(main())

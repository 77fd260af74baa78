"""``python -m seedsvc_devcluster.controlplane up --dir D``: one control plane in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from seedsvc_devcluster.controlplane.options import ControlPlaneOptions
from seedsvc_devcluster.controlplane.plane import ControlPlane
from seedsvc_devcluster.kubelet import KubeletOptions
from seedsvc_devcluster.local_cluster import LocalCluster


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m seedsvc_devcluster.controlplane")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane and run until SIGINT/SIGTERM")
    up.add_argument("--dir", type=Path, required=True, help="state directory (PKI, kubeconfig, etcd data, logs)")
    up.add_argument("--no-watch-cache", action="store_true")
    up.add_argument("--etcd-compaction-interval", default=ControlPlaneOptions.etcd_compaction_interval)
    up.add_argument("--min-request-timeout", type=int, default=ControlPlaneOptions.min_request_timeout_s)
    up.add_argument("--runtime-config", default="")
    up.add_argument("--coredns-cache", type=int, default=0, help="CoreDNS cache seconds (0: off)")
    up.add_argument("--kubelet", action="store_true", help="also run the kubelet stand-in (3 fake nodes)")
    up.add_argument("--probe", action="store_true", help="kubelet stand-in probes readinessProbes")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    options = ControlPlaneOptions(
        watch_cache=not args.no_watch_cache,
        etcd_compaction_interval=args.etcd_compaction_interval,
        min_request_timeout_s=args.min_request_timeout,
        runtime_config=args.runtime_config,
        coredns_cache_s=args.coredns_cache,
    )
    kubelet_options = KubeletOptions(probe=args.probe) if args.kubelet else None
    with (
        _stop_on_signals() as stop,
        ControlPlane(args.dir.resolve(), options) as plane,
        LocalCluster(args.dir.resolve(), kubelet_options=kubelet_options, adopt=plane),
    ):
        print(f"kubeconfig: {plane.kubeconfig}", flush=True)
        print(f"server:     {plane.server}", flush=True)
        print(f"dns:        {plane.dns[0]}:{plane.dns[1]} ({plane.cluster_domain})", flush=True)
        print(f"started in {plane.startup_seconds:.1f}s; Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):
            plane.check_alive()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CoreDNS serving the cluster domain from the API server (the kubernetes plugin), on loopback only."""

from __future__ import annotations

from pathlib import Path

from seedsvc_devcluster.controlplane.options import LOOPBACK, ControlPlaneOptions


def corefile(options: ControlPlaneOptions, *, kubeconfig: Path, port: int, ready_port: int) -> str:
    """Corefile serving the cluster domain from the API, on 127.0.0.1 (and ``options.address``)."""
    opts = options
    cache = f"    cache {opts.coredns_cache_s}\n" if opts.coredns_cache_s > 0 else ""
    return (
        f".:{port} {{\n"
        f"    bind {' '.join(dict.fromkeys((LOOPBACK, opts.address)))}\n"
        "    errors\n"
        f"    ready {LOOPBACK}:{ready_port}\n"
        f"{cache}"
        f"    kubernetes {opts.cluster_domain} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig} seedsvc:coredns\n"
        # verified: pod A records (1-2-3-4.ns.pod...) only for pods that exist.
        "        pods verified\n"
        f"        ttl {opts.coredns_ttl_s}\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "    }\n"
        "}\n"
    )

"""kube-apiserver's command line for one control plane."""

from __future__ import annotations

from pathlib import Path

from seedsvc_devcluster.controlplane.options import ControlPlaneOptions
from seedsvc_devcluster.controlplane.pki import Pki


def apiserver_argv(
    binary: Path, *, directory: Path, pki: Pki, options: ControlPlaneOptions, etcd_url: str, port: int
) -> list[str]:
    opts = options
    argv = [
        str(binary),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={opts.address}",
        f"--advertise-address={opts.address}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        # For logs and exec on real kubelets (the node mode); kubelets authorise it as system:masters.
        f"--kubelet-client-certificate={pki.kubelet_client.cert}",
        f"--kubelet-client-key={pki.kubelet_client.key}",
        f"--kubelet-certificate-authority={pki.ca.cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer=https://kubernetes.default.svc.{opts.cluster_domain}",
        f"--service-account-key-file={pki.service_account.cert}",
        f"--service-account-signing-key-file={pki.service_account.key}",
        f"--service-cluster-ip-range={opts.service_cluster_ip_range}",
        f"--watch-cache={'true' if opts.watch_cache else 'false'}",
        f"--etcd-compaction-interval={opts.etcd_compaction_interval}",
        f"--min-request-timeout={opts.min_request_timeout_s}",
        f"--cert-dir={directory / 'apiserver-certs'}",
        "--profiling=false",
        "--v=1",
    ]
    if opts.runtime_config:
        argv.append(f"--runtime-config={opts.runtime_config}")
    return argv + list(opts.extra_apiserver_args)

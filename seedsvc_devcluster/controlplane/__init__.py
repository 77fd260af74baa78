"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, CoreDNS.

From pytest use the ``control_plane`` fixture (tests/cluster_fixtures.py). From a shell::

    python3 -m seedsvc_devcluster.controlplane up --dir /tmp/cp [--kubelet] [--no-watch-cache] ...

prints where the admin kubeconfig is and runs until SIGINT/SIGTERM, then tears everything down.

Everything listens on 127.0.0.1 on free ports. Processes run in their own process groups, die with the
process that started them (PR_SET_PDEATHSIG) and are stopped by ``stop()``, by an atexit hook and by
the fixture finaliser, so a failing test leaves nothing behind.

Modules: ``options`` (ControlPlaneOptions, the error type), ``pki`` (CA and certificates),
``kubeconfig``, ``etcd``, ``apiserver``, ``controller_manager``, ``coredns``, ``tokens``
(TokenRequest and in-cluster files), composed by ``plane`` (ControlPlane).
"""

from seedsvc_devcluster.api_client import kube_json
from seedsvc_devcluster.controlplane.kubeconfig import write_kubeconfig
from seedsvc_devcluster.controlplane.options import (
    DEFAULT_CONTROLLERS,
    LOOPBACK,
    NODE_CONTROLLERS,
    ControlPlaneError,
    ControlPlaneOptions,
)
from seedsvc_devcluster.controlplane.pki import KeyPair, issue_cert, make_ca
from seedsvc_devcluster.controlplane.plane import ControlPlane, wait_until

__all__ = [
    "DEFAULT_CONTROLLERS",
    "LOOPBACK",
    "NODE_CONTROLLERS",
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneOptions",
    "KeyPair",
    "issue_cert",
    "kube_json",
    "make_ca",
    "wait_until",
    "write_kubeconfig",
]

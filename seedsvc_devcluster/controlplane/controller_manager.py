"""kube-controller-manager's command line: only the controllers the tests rely on, one instance."""

from __future__ import annotations

from pathlib import Path

from seedsvc_devcluster.controlplane.options import ControlPlaneOptions
from seedsvc_devcluster.controlplane.pki import Pki

# The default namespace's "default" ServiceAccount appears once the controllers run.
READY_PATH = "/api/v1/namespaces/default/serviceaccounts/default"


def controller_manager_argv(binary: Path, *, kubeconfig: Path, pki: Pki, options: ControlPlaneOptions) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--controllers={','.join(options.controllers)}",
        "--use-service-account-credentials=true",
        f"--root-ca-file={pki.ca.cert}",
        f"--service-account-private-key-file={pki.service_account.key}",
        "--leader-elect=false",  # one instance; electing only delays the start
        "--secure-port=0",  # nothing scrapes it; one port less to allocate
        "--cluster-name=seedsvc-test",
        "--v=1",
    ]

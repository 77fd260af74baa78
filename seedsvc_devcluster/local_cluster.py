"""The local cluster as one object: a control plane, the kubelet stand-in, namespaces ready for seedsvc.

:class:`LocalCluster` is what tests (tests/cluster_fixtures.py), benchmarks (benchmarks/common.py),
``make demo`` and ``python -m seedsvc_devcluster up`` start. Per-pod processes (a sidecar and a
Cassandra node per pod) are a layer above it: :mod:`seedsvc_devcluster.system`.

Two datacenters, either way:

- two namespaces of one cluster: ``cluster.create_namespace("dc1")`` and ``"dc2"``; one kubelet
  stand-in runs the pods of both (each pod labelled with its DC by its manifest);
- two clusters: ``LocalCluster(dir1, kubelet_options=KubeletOptions(first_pod_ip="127.0.60.1"))`` and
  ``LocalCluster(dir2, kubelet_options=KubeletOptions(first_pod_ip="127.0.70.1"))``; every port is
  allocated freshly (see :mod:`seedsvc_devcluster.ports`), so both run side by side.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions, wait_until
from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions

# The serviceaccount controller creates "default" within a second; pods are refused until it exists.
NAMESPACE_READY_TIMEOUT_S: Final = 30.0
SEEDSVC_ACCOUNT: Final = "seedsvc"

_PLURALS: Final = {"StatefulSet": "statefulsets", "RoleBinding": "rolebindings", "EndpointSlice": "endpointslices"}


def collection_path(namespace: str, obj: dict[str, Any]) -> str:
    """The API path objects of ``obj``'s kind live under in ``namespace``."""
    version = obj["apiVersion"]
    prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
    plural = _PLURALS.get(obj["kind"], obj["kind"].lower() + "s")
    return f"{prefix}/namespaces/{namespace}/{plural}"


@dataclass
class LocalCluster:
    """A control plane (started here, or ``adopt`` an already started one) plus the kubelet stand-in.

    ``kubelet_options=None`` starts no stand-in (:meth:`start_kubelet` can add one later). Whatever
    :meth:`start` started or adopted, :meth:`stop` stops.
    """

    workdir: Path
    options: ControlPlaneOptions = field(default_factory=ControlPlaneOptions)
    kubelet_options: KubeletOptions | None = field(default_factory=KubeletOptions)
    bin_dir: Path | None = None
    adopt: ControlPlane | None = None
    _plane: ControlPlane | None = field(default=None, init=False)
    _kubelet: Kubelet | None = field(default=None, init=False)

    # -- lifecycle --

    def start(self) -> LocalCluster:
        if self._plane is None:
            self._plane = self.adopt or ControlPlane(self.workdir / "controlplane", self.options, bin_dir=self.bin_dir)
        try:
            if self.adopt is None:
                self._plane.start()
            if self.kubelet_options is not None:
                self.start_kubelet(self.kubelet_options)
        except BaseException:
            self.stop()
            raise
        return self

    def start_kubelet(self, options: KubeletOptions | None = None) -> Kubelet:
        """The running stand-in, started now if there is none."""
        if self._kubelet is None:
            self._kubelet = Kubelet.from_kubeconfig(self.plane.kubeconfig, options or KubeletOptions()).start()
        return self._kubelet

    def stop(self) -> None:
        """Stop the stand-in, then the control plane. Safe to call more than once."""
        kubelet, self._kubelet = self._kubelet, None
        if kubelet is not None:
            with contextlib.suppress(Exception):  # the plane must stop whatever the stand-in did
                kubelet.stop()
            kubelet.api_client.close()  # type: ignore[no-untyped-call]  # untyped upstream
        if self._plane is not None:
            self._plane.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- what it runs --

    @property
    def plane(self) -> ControlPlane:
        if self._plane is None:
            raise RuntimeError("the local cluster has not been started")
        return self._plane

    @property
    def kubelet(self) -> Kubelet:
        if self._kubelet is None:
            raise RuntimeError("the local cluster runs no kubelet stand-in")
        return self._kubelet

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def startup_seconds(self) -> float:
        return self.plane.startup_seconds

    def admin_ssl(self) -> ssl.SSLContext:
        """A TLS context with the admin client certificate, for clients other than ``plane.api``."""
        return self.plane.admin_ssl()

    # -- objects --

    def create_namespace(self, name: str) -> str:
        """Create ``name`` and wait for its default ServiceAccount (pods are refused before it exists)."""
        plane = self.plane
        plane.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        wait_until(
            lambda: plane.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            timeout_s=NAMESPACE_READY_TIMEOUT_S,
            what=f"default ServiceAccount in {name}",
        )
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete ``name``; the namespace controller removes its contents (nothing waits for it)."""
        self.plane.api("DELETE", f"/api/v1/namespaces/{name}")

    def apply(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` in ``namespace`` as cluster admin; returns what the API server stored."""
        stored: dict[str, Any] = self.plane.api("POST", collection_path(namespace, obj), obj)
        return stored

    def grant_seedsvc(self, namespace: str, *, endpoints: bool = False) -> Path:
        """The sidecar's ServiceAccount, Role (EndpointSlices; v1 Endpoints too if asked) and binding.

        Returns a directory holding the in-cluster files (token, ca.crt, namespace) of that account.
        """
        role = k8s.role_for_endpointslices()
        if endpoints:
            role["rules"].append({"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]})
        binding = k8s.role_binding(SEEDSVC_ACCOUNT, SEEDSVC_ACCOUNT, SEEDSVC_ACCOUNT, namespace)
        for obj in (k8s.service_account(SEEDSVC_ACCOUNT), role, binding):
            self.apply(namespace, obj)
        return self.plane.write_incluster_files(namespace, SEEDSVC_ACCOUNT, self.workdir / "sa" / namespace)

    def statefulset(
        self, namespace: str, name: str, replicas: int, *, ready: bool = True, timeout: float = 90
    ) -> list[dict[str, Any]]:
        """A headless Service and a StatefulSet of ``replicas`` pods; waits until all are Ready == ``ready``."""
        self.apply(namespace, k8s.headless_service(name))
        self.apply(namespace, k8s.statefulset(name, replicas))
        return self.kubelet.wait_for_pods(namespace, f"app={name}", replicas, ready=ready, timeout=timeout)

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

Real pods instead of the stand-in: ``LocalCluster(dir, kubelet_options=None, pod_layer=PodLayerOptions())``
runs real kubelets, containerd and runc (one node per fake zone, :mod:`seedsvc_devcluster.node`) with
the images built from deploy/images; one such cluster at a time per machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster import polling
from seedsvc_devcluster.controlplane import NODE_CONTROLLERS, ControlPlane, ControlPlaneOptions, wait_until
from seedsvc_devcluster.images import ensure_images
from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions, settled_pods
from seedsvc_devcluster.node.pod_layer import PodImages, PodLayer, PodLayerOptions

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
    pod_layer: PodLayerOptions | None = None
    _plane: ControlPlane | None = field(default=None, init=False)
    _kubelet: Kubelet | None = field(default=None, init=False)
    _layer: PodLayer | None = field(default=None, init=False)

    # -- lifecycle --

    def start(self) -> LocalCluster:
        if self.pod_layer is not None:
            return self._start_with_pod_layer(self.pod_layer)
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

    def _start_with_pod_layer(self, layer_options: PodLayerOptions) -> LocalCluster:
        if self.kubelet_options is not None or self.adopt is not None:
            raise ValueError("the real pod layer replaces the kubelet stand-in: pass kubelet_options=None, no adopt")
        built = ensure_images()  # before the machine-wide lock: a cold build takes minutes
        images = PodImages(tuple(image.archive for image in built.by_name.values()), built["pause"].reference)
        self._layer = PodLayer(self.workdir, layer_options.nodes, bin_dir=self.bin_dir)
        try:
            self._layer.prepare()
            options = dataclasses.replace(
                self.options, address=self._layer.address, scheduler=True, controllers=NODE_CONTROLLERS
            )
            self._plane = ControlPlane(self.workdir / "controlplane", options, bin_dir=self.bin_dir)
            self._plane.start()
            self._layer.start(self._plane, images)
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
        layer, self._layer = self._layer, None
        if layer is not None:
            layer.stop()
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
    def layer(self) -> PodLayer:
        if self._layer is None:
            raise RuntimeError("the local cluster runs no real pod layer")
        return self._layer

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

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Live (not terminating) pods matching ``selector``, by name."""
        listed = self.plane.api("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
        live = [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]
        return sorted(live, key=lambda p: p["metadata"]["name"])

    def wait_for_ready_pods(self, namespace: str, selector: str, count: int, *, timeout: float) -> list[dict[str, Any]]:
        """Wait until exactly ``count`` live pods match, all Ready with an IP (real kubelets or the stand-in)."""

        def ready() -> list[dict[str, Any]] | None:
            return settled_pods(self.pods(namespace, selector), count)

        return polling.poll(ready, timeout=timeout, what=f"{count} Ready pods {selector} in {namespace}", interval=1.0)

    def statefulset(
        self, namespace: str, name: str, replicas: int, *, ready: bool = True, timeout: float = 90
    ) -> list[dict[str, Any]]:
        """A headless Service and a StatefulSet of ``replicas`` pods; waits until all are Ready == ``ready``."""
        self.apply(namespace, k8s.headless_service(name))
        self.apply(namespace, k8s.statefulset(name, replicas))
        return self.kubelet.wait_for_pods(namespace, f"app={name}", replicas, ready=ready, timeout=timeout)

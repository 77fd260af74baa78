"""What a local control plane runs with: its options (production-like defaults) and its error type."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK = "127.0.0.1"

# The controllers the tests rely on, by their kube-controller-manager names
# (cmd/kube-controller-manager/names). Node lifecycle, IPAM and the rest stay off: there are no real
# nodes, and anything that would try to reach one must not run.
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "statefulset-controller",
    "endpointslice-controller",
    "endpoints-controller",  # v1 Endpoints, for seedsvc's fallback path
    "serviceaccount-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",  # so the built-in admin/edit/view roles are complete
)

# What real kubelets need on top: the not-ready taint a kubelet registers with lifted once it is Ready
# (and set again when it stops reporting), PersistentVolumeClaims of a StatefulSet bound to the nodes'
# local volumes, and pods of a deleted node cleaned up.
NODE_CONTROLLERS: tuple[str, ...] = (
    *DEFAULT_CONTROLLERS,
    "node-lifecycle-controller",
    "persistentvolume-binder-controller",
    "pod-garbage-collector-controller",
)


class ControlPlaneError(RuntimeError):
    """A component failed to start or stop; the message carries the tail of its log."""


@dataclass(frozen=True)
class ControlPlaneOptions:
    """Knobs for the fault and performance cases. Defaults are those of a production-like cluster."""

    watch_cache: bool = True
    """False serves every watch from etcd, so a compaction makes an old resourceVersion 410 Gone."""

    etcd_compaction_interval: str = "5m"
    """kube-apiserver --etcd-compaction-interval; "0" disables the API server's own compactions."""

    min_request_timeout_s: int = 1800
    """kube-apiserver --min-request-timeout: watches end after a random time in [this, 2*this]."""

    runtime_config: str = ""
    """kube-apiserver --runtime-config, e.g. "discovery.k8s.io/v1=false" to test the Endpoints fallback.
    CoreDNS needs EndpointSlices, so such a cluster runs without it; /readyz then skips informer-sync."""

    coredns: bool = True
    """Run CoreDNS. It needs EndpointSlices, so it never runs when runtime_config turns them off."""

    coredns_cache_s: int = 0
    """Seconds for CoreDNS's cache plugin; 0 leaves it out so tests see every change at once."""

    coredns_ttl_s: int = 5
    """TTL CoreDNS's kubernetes plugin puts on answers (its default is 5)."""

    cluster_domain: str = "cluster.local"
    service_cluster_ip_range: str = "198.19.0.0/16"
    """Inside the benchmarking range like every other address here. Without a node mode ClusterIPs are
    only API data; the node mode routes the two its pods use (see seedsvc_devcluster/node)."""

    address: str = LOOPBACK
    """Where the API server and CoreDNS listen (CoreDNS on loopback too). The node mode passes the
    fabric bridge's address, so pods in their own network namespaces reach both."""

    scheduler: bool = False
    """Run kube-scheduler. The kubelet stand-in places pods itself; real kubelets need the scheduler."""

    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
    extra_apiserver_args: tuple[str, ...] = ()
    start_timeout_s: float = 90.0
    """Bound for each component to become ready; a warm start of everything takes well under 30 s."""

    stop_timeout_s: float = 5.0
    """Grace after SIGTERM before the process group is killed. The API server of this version stops
    serving at once on SIGTERM but then lingers for more than 15 s before exiting; waiting for that
    only slows every teardown."""

    @property
    def serves_endpointslices(self) -> bool:
        return "discovery.k8s.io/v1=false" not in self.runtime_config.replace(" ", "")

    @property
    def readyz_path(self) -> str:
        """Without EndpointSlices an API server informer never syncs; that one check is left out."""
        return "/readyz" if self.serves_endpointslices else "/readyz?exclude=informer-sync"

"""The files one node runs from: containerd's config, the CNI network, the kubelet's config (pure).

Every path a component would default to outside the node's state directory is set explicitly; the
few the kubelet hard-codes (/var/lib/kubelet, /var/log/pods, /var/log/containers) are bind mounts
inside the node's own mount namespace (:mod:`.real_node`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from seedsvc_devcluster.node.addressing import CLUSTER_DNS_IP, NodeAddressing

# The kernel settings the kubelet sets at start (container_manager_linux.go, setupKernelTunables). In
# the node's mount namespace each of these /proc/sys files is a bind mount of a file of our own, so
# the kubelet's writes never reach the machine.
KUBELET_SYSCTLS: Final = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
CNI_BIN_DIR: Final = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC: Final = Path("/usr/sbin/runc")  # Debian's runc (crun fails on this cgroup v1/v2 hybrid)
CLUSTER_DOMAIN: Final = "cluster.local"


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its state (all below ``root``, removed when the node stops).

    Its sockets live in ``sockets``, a short directory: a Unix socket path may not exceed 108 bytes
    (containerd refuses 104), and ``root`` can be deep (a pytest temporary directory, say).
    """

    root: Path
    sockets: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.sockets / f"{self.root.name}.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def base_runtime_spec(self) -> Path:
        return self.root / "containerd" / "base-runtime-spec.json"

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def var_lib(self) -> Path:
        """Bind-mounted on /var/lib in the node's mount namespace (kubelet/ lives here)."""
        return self.root / "var-lib"

    @property
    def var_log(self) -> Path:
        """Bind-mounted on /var/log in the node's mount namespace (pods/ and containers/)."""
        return self.root / "var-log"

    @property
    def sysctl_masks(self) -> Path:
        return self.root / "sysctl"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet" / "config.json"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet" / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "kubelet" / "pki"

    @property
    def volumes(self) -> Path:
        """Local PersistentVolumes of this node."""
        return self.root / "volumes"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML rendering for {value!r}")


def render_toml(tables: Mapping[str, Mapping[str, Any]], top: Mapping[str, Any]) -> str:
    """Top-level keys, then one ``[table]`` per entry (names already quoted as TOML wants)."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for table, keys in tables.items():
        lines += ["", f"[{table}]", *(f"{key} = {_toml_value(value)}" for key, value in keys.items())]
    return "\n".join(lines) + "\n"


def containerd_config(paths: NodePaths, *, pause_image: str) -> str:
    """containerd 2.x (config version 3) with the CRI plugin, runc via cgroupfs, our CNI network."""
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    runc = f"{cri_runtime}.containerd.runtimes.runc"
    return render_toml(
        {
            "grpc": {"address": str(paths.containerd_socket)},
            "ttrpc": {"address": str(paths.containerd_socket) + ".ttrpc"},
            "plugins.'io.containerd.grpc.v1.cri'": {"disable_tcp_service": True},
            cri_runtime: {
                "enable_selinux": False,
                # No AppArmor profile is loaded into the kernel (a machine-wide change).
                "disable_apparmor": True,
                # The kubelet gives pods negative OOM scores, which needs CAP_SYS_RESOURCE.
                "restrict_oom_score_adj": True,
                # Pod network namespaces are bind-mounted under the state directory, not /run/netns.
                "netns_mounts_under_state_dir": True,
                "tolerate_missing_hugetlb_controller": True,
            },
            f"{cri_runtime}.containerd": {"default_runtime_name": "runc"},
            runc: {"runtime_type": "io.containerd.runc.v2", "base_runtime_spec": str(paths.base_runtime_spec)},
            f"{runc}.options": {"BinaryName": str(RUNC), "Root": str(paths.runc_root), "SystemdCgroup": False},
            f"{cri_runtime}.cni": {
                "bin_dirs": [str(CNI_BIN_DIR)],
                "conf_dir": str(paths.cni_conf_dir),
                "max_conf_num": 1,
            },
            "plugins.'io.containerd.cri.v1.images'": {"snapshotter": "overlayfs"},
            "plugins.'io.containerd.cri.v1.images'.pinned_images": {"sandbox": pause_image},
        },
        {"version": 3, "root": str(paths.containerd_root), "state": str(paths.containerd_state)},
    )


def with_rlimits(spec: dict[str, Any], limits: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """containerd's default OCI spec with explicit rlimits: runc cannot raise a limit above ours
    without CAP_SYS_RESOURCE, which this machine does not give, so every container gets ours."""
    process = dict(spec.get("process", {}))
    process["rlimits"] = [{"type": name, "hard": hard, "soft": soft} for name, (soft, hard) in limits.items()]
    return {**spec, "process": process}


def cni_network(node: NodeAddressing, paths: NodePaths) -> dict[str, Any]:
    """One bridge per node, pods' default route through it, no masquerade (every hop is routed)."""
    return {
        "cniVersion": "1.0.0",
        "name": "seedsvc-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_subnet, "gateway": node.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.cni_ipam_dir),
                },
            }
        ],
    }


def kubelet_config(node: NodeAddressing, paths: NodePaths, *, ca_file: Path, cgroup_root: str) -> dict[str, Any]:
    """KubeletConfiguration (v1beta1): cgroupfs on cgroup v1, webhook authn/authz, our CA and cert."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.address,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(paths.pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(paths.pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",
        "registerNode": True,
        "enableControllerAttachDetach": False,
        "localStorageCapacityIsolation": True,
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "30s",
        "syncFrequency": "10s",
        # Images are imported, never pulled: nothing may garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared test machine's disk and memory are not the node's to protect.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "shutdownGracePeriod": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
    }

"""One real node: a network namespace and a mount namespace holding containerd and a kubelet.

The node's processes all start inside one *holder* process's namespaces (entered with nsenter) and
join the node's cgroups before they exec, so the janitor finds every one of them. The holder's mount
namespace is private: the kubelet's tmpfs mounts for projected volumes, containerd's overlay mounts
and the bind mounts that keep the kubelet's fixed paths and kernel settings away from the machine
vanish with it.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from seedsvc_devcluster import polling, processes
from seedsvc_devcluster.controlplane import ControlPlane, write_kubeconfig
from seedsvc_devcluster.node import cgroups
from seedsvc_devcluster.node.addressing import NodeAddressing
from seedsvc_devcluster.node.configs import (
    KUBELET_SYSCTLS,
    NodePaths,
    cni_network,
    containerd_config,
    kubelet_config,
    with_rlimits,
)

READY_TIMEOUT_S: Final = 180.0
IMPORT_TIMEOUT_S: Final = 600.0
STOP_GRACE_S: Final = 5.0
# The CPU capacity each kubelet reports (see the SEEDSVC_NODE_MILLICPU patch in build.py).
DEFAULT_NODE_MILLICPU: Final = 8000


class NodeError(RuntimeError):
    """A node component failed to start; the message carries the tail of its log."""


def holder_script(paths: NodePaths) -> str:
    """Run in the holder's fresh mount namespace: hide /run, /var/lib, /var/log and the kernel settings."""
    lines = [
        "set -eu",
        "mount -t tmpfs -o mode=0755 seedsvc-run /run",
        f"mount --bind {shlex.quote(str(paths.var_lib))} /var/lib",
        f"mount --bind {shlex.quote(str(paths.var_log))} /var/log",
    ]
    for name in KUBELET_SYSCTLS:
        mask = shlex.quote(str(paths.sysctl_masks / name.replace("/", ".")))
        lines.append(f"mount --bind {mask} /proc/sys/{name}")
    lines += [f"touch {shlex.quote(str(paths.root / 'holder.ready'))}", "exec sleep infinity"]
    return "\n".join(lines)


@dataclass
class RealNode:
    """Node ``addressing`` of a pod layer, its state in ``paths.root``, its cgroups below ``cgroup_root``."""

    addressing: NodeAddressing
    paths: NodePaths
    cgroup_root: str
    bin_dir: Path
    millicpu: int = DEFAULT_NODE_MILLICPU
    _children: dict[str, processes.ChildProcess] = field(default_factory=dict, init=False)

    @property
    def name(self) -> str:
        return self.addressing.name

    def start(self, plane: ControlPlane, *, pause_image: str, archives: Sequence[Path]) -> RealNode:
        self._prepare_files(plane, pause_image)
        system = f"{self.cgroup_root}/system"
        procs = cgroups.join_paths(system)
        self._start_holder(procs)
        self._start_containerd(procs)
        for archive in archives:
            self.import_image(archive)
        self._start_kubelet(procs, plane)
        return self

    def stop(self) -> None:
        """Kill every process of the node (containers too) and remove its cgroups; the namespaces go
        with the last process. The pod layer's janitor removes the network and the state."""
        for child in reversed(list(self._children.values())):
            child.stop(0)
        self._children.clear()
        cgroups.kill_and_remove(self.cgroup_root)

    # -- files --

    def _prepare_files(self, plane: ControlPlane, pause_image: str) -> None:
        p = self.paths
        for directory in (p.var_lib / "kubelet", p.var_log, p.sysctl_masks, p.cni_conf_dir, p.cni_ipam_dir, p.volumes):
            directory.mkdir(parents=True, exist_ok=True)
        for name in KUBELET_SYSCTLS:
            # Start from the machine's values so nothing else in the namespace sees a difference.
            (p.sysctl_masks / name.replace("/", ".")).write_text(Path("/proc/sys", name).read_text())
        p.containerd_config.parent.mkdir(parents=True, exist_ok=True)
        p.containerd_config.write_text(containerd_config(p, pause_image=pause_image))
        (p.cni_conf_dir / "10-seedsvc.conflist").write_text(json.dumps(cni_network(self.addressing, p), indent=1))
        pair = plane.issue_cert(
            p.pki,
            stem="kubelet",
            common_name=f"system:node:{self.name}",
            organization="system:nodes",
            ip_addresses=(self.addressing.address,),
        )
        write_kubeconfig(p.kubelet_kubeconfig, server=plane.server, ca=plane.ca_file, client=pair, user=self.name)
        p.kubelet_config.write_text(
            json.dumps(kubelet_config(self.addressing, p, ca_file=plane.ca_file, cgroup_root=self.cgroup_root))
        )
        spec = json.loads(self._ctr("oci", "spec"))
        limits = {
            "RLIMIT_NOFILE": resource.getrlimit(resource.RLIMIT_NOFILE),
            "RLIMIT_NPROC": resource.getrlimit(resource.RLIMIT_NPROC),
        }
        p.base_runtime_spec.write_text(json.dumps(with_rlimits(spec, limits)))

    # -- processes --

    def _child(self, name: str, argv: list[str], procs: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        child = processes.ChildProcess(
            f"{self.name}/{name}",
            argv,
            self.paths.logs / f"{name}.log",
            env=env,
            preexec=lambda: cgroups.join_self(procs),
        )
        self._children[name] = child
        child.start()

    def _in_node(self, argv: list[str]) -> list[str]:
        holder = self._children["holder"].pid
        return ["nsenter", f"--target={holder}", "--mount", "--net", "--", *argv]

    def _wait(self, name: str, condition: Callable[[], object], what: str) -> None:
        child = self._children[name]
        polling.poll(
            condition,
            timeout=READY_TIMEOUT_S,
            what=f"{self.name}: {what}",
            alive=lambda: child.check_alive(NodeError),
            error=NodeError,
        )

    def _start_holder(self, procs: tuple[str, ...]) -> None:
        ready = self.paths.root / "holder.ready"
        ready.unlink(missing_ok=True)
        # nsenter, not `ip netns exec`: that remounts /sys for the namespace, which drops the cgroup
        # hierarchies mounted below it, and the kubelet needs them.
        netns = f"/run/netns/{self.name}"
        argv = ["nsenter", f"--net={netns}", "unshare", "--mount", "--propagation", "private", "--"]
        self._child("holder", [*argv, "sh", "-c", holder_script(self.paths)], procs)
        self._wait("holder", ready.exists, "mount namespace")

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            # containerd finds its shim on PATH; runc and the CNI plugins are Debian's.
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        }

    def _start_containerd(self, procs: tuple[str, ...]) -> None:
        argv = self._in_node([str(self.bin_dir / "containerd"), "--config", str(self.paths.containerd_config)])
        self._child("containerd", argv, procs, self._environment())
        self._wait("containerd", self._containerd_serving, "containerd serving")

    def _containerd_serving(self) -> bool:
        try:
            self._ctr("version")
        except NodeError:
            return False
        return True

    def _ctr(self, *args: str, timeout: float = 30.0) -> str:
        argv = [str(self.bin_dir / "ctr"), "--address", str(self.paths.containerd_socket), "--namespace", "k8s.io"]
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive into the node's containerd (the CRI's k8s.io namespace), unpacked."""
        began = time.monotonic()
        self._ctr("images", "import", "--no-unpack=false", str(archive), timeout=IMPORT_TIMEOUT_S)
        print(f"[{self.name}] imported {archive.name} in {time.monotonic() - began:.1f}s", flush=True)

    def images(self) -> list[str]:
        return self._ctr("images", "list", "--quiet").split()

    def _start_kubelet(self, procs: tuple[str, ...], plane: ControlPlane) -> None:
        p = self.paths
        argv = self._in_node(
            [
                str(self.bin_dir / "kubelet"),
                f"--config={p.kubelet_config}",
                f"--kubeconfig={p.kubelet_kubeconfig}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.addressing.address}",
                f"--node-labels=topology.kubernetes.io/zone={self.addressing.zone},topology.kubernetes.io/region=local",
                "--v=1",
            ]
        )
        env = {**self._environment(), "SEEDSVC_NODE_MILLICPU": str(self.millicpu)}
        self._child("kubelet", argv, procs, env)
        self._wait("kubelet", lambda: self._node_ready(plane), "Node Ready")

    def _node_ready(self, plane: ControlPlane) -> bool:
        try:
            node = plane.api("GET", f"/api/v1/nodes/{self.name}")
        except Exception:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

"""A test run killed with SIGKILL while real nodes run leaves nothing behind on the machine.

A child Python process starts a control plane and a one-node pod layer and runs a pod (so containerd
shims and a container exist), then is SIGKILLed, as CI's timeout or a developer's kill -9 would. The
pod layer's janitor, in a session of its own, must then remove every process, cgroup, namespace,
mount, link and file of that layer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seedsvc_devcluster import polling
from seedsvc_devcluster.node import cgroups, network
from seedsvc_devcluster.node.addressing import NAME_PREFIX
from seedsvc_devcluster.node.janitor import RUN_DIR, SOCKET_DIR
from tests.cluster_fixtures import _binaries

pytestmark = [pytest.mark.controlplane, pytest.mark.podlayer, pytest.mark.images, pytest.mark.timeout(900)]

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from seedsvc_devcluster.images import ensure_images
    from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneOptions, NODE_CONTROLLERS
    from seedsvc_devcluster.node.pod_layer import PodImages, PodLayer

    workdir, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
    pause = ensure_images(["pause"])["pause"]
    layer = PodLayer(workdir, node_count=1, bin_dir=bin_dir).prepare()
    options = ControlPlaneOptions(address=layer.address, scheduler=True, controllers=NODE_CONTROLLERS)
    plane = ControlPlane(workdir / "controlplane", options, bin_dir=bin_dir).start()
    layer.start(plane, PodImages((pause.archive,), pause.reference))
    plane.api("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "p", "image": pause.reference}]}})
    while plane.api("GET", "/api/v1/namespaces/default/pods/p").get("status", {}).get("phase") != "Running":
        time.sleep(0.5)
    print("RUNNING", flush=True)
    time.sleep(3600)
    """
)


def _leftovers(workdir: Path) -> list[str]:
    found: list[str] = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(NAME_PREFIX)]
    if network.fabric_exists():
        found.append("fabric bridge")
    for hierarchy in cgroups.CLEANUP_HIERARCHIES:
        # os.walk, not rglob: the janitor removes these directories while we look.
        for parent, directories, _ in os.walk(cgroups.CGROUP_MOUNT / hierarchy):
            found += [f"cgroup {parent}/{d}" for d in directories if d.startswith(NAME_PREFIX)]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmdline and int(pid) != os.getpid():
            found.append(f"process {pid}: {cmdline[:120]}")
    found += [f"mount {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(workdir) in line]
    if workdir.joinpath("nodes").exists():
        found.append("state directory")
    if RUN_DIR.exists():
        found.append(f"{RUN_DIR} (the janitor still holds the lock)")
    if SOCKET_DIR.exists():
        found.append(f"{SOCKET_DIR} (the nodes' sockets)")
    return found


def test_sigkilled_run_leaves_no_process_namespace_cgroup_mount_or_file(tmp_path: Path) -> None:
    workdir = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workdir), str(_binaries())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            output.append(line)
            if line.strip() == "RUNNING":
                break
        assert output and output[-1].strip() == "RUNNING", "".join(output[-40:])
        assert "containerd-shim" in _commands(), "a pod runs, so its containerd shim does"
        assert _leftovers(workdir), "the layer runs: the check below must see something to remove"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    polling.poll(lambda: not _leftovers(workdir), timeout=120, what="the janitor removing the killed pod layer")


def _commands() -> set[str]:
    """Every process's command name (/proc/<pid>/comm: at most 15 characters)."""
    names: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            names.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names

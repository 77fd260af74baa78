"""What the real pod layer needs from the machine, checked (and the Debian packages installed) up front.

``python -m seedsvc_devcluster.node.host_requirements install`` is what ``make prerequisites`` runs:
it installs the missing Debian packages when it can (root with apt-get), and otherwise says what is
missing without failing, so ``make demo`` can still fall back to the kubelet stand-in.
``unavailable()`` is the one check the demo and the tests use before starting a pod layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from seedsvc_devcluster.node import cgroups

# Command -> the Debian (bookworm) package that provides it.
COMMANDS: Final = {
    "podman": "podman",
    "buildah": "buildah",
    "debootstrap": "debootstrap",
    "runc": "runc",
    "nft": "nftables",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "gcc": "gcc",  # the pause image's static binary
}
# Static linking of the pause binary needs glibc's static archive.
STATIC_LIBC: Final = Path("/usr/lib/x86_64-linux-gnu/libc.a")
CNI_PLUGINS: Final = (Path("/usr/lib/cni/bridge"), Path("/usr/lib/cni/host-local"), Path("/usr/lib/cni/loopback"))
CNI_PACKAGE: Final = "containernetworking-plugins"
APT_TIMEOUT_S: Final = 1800.0


def missing_packages() -> list[str]:
    packages = {package for command, package in COMMANDS.items() if shutil.which(command) is None}
    if not all(plugin.is_file() for plugin in CNI_PLUGINS):
        packages.add(CNI_PACKAGE)
    if not STATIC_LIBC.is_file():
        packages.add("libc6-dev")
    return sorted(packages)


def unavailable() -> str | None:
    """Why the real pod layer cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "it needs root (network namespaces, cgroups, mounts)"
    packages = missing_packages()
    if packages:
        return f"Debian packages missing: {' '.join(packages)} (make prerequisites installs them as root)"
    try:
        cgroups.mounted_hierarchies()
    except cgroups.CgroupError as exc:
        return str(exc)
    return None


def install() -> int:
    packages = missing_packages()
    if not packages:
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"note: the real pod layer needs {' '.join(packages)} (Debian packages) and root; "
            "without them `make demo` uses the kubelet stand-in and the pod-layer tests fail",
            file=sys.stderr,
        )
        return 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        subprocess.run(argv, env=env, check=True, timeout=APT_TIMEOUT_S)
    return 0


def main(argv: list[str]) -> int:
    if argv == ["install"]:
        return install()
    if argv == ["check"]:
        reason = unavailable()
        print(reason or "the real pod layer can run here")
        return 0 if reason is None else 1
    print(f"usage: python -m seedsvc_devcluster.node.host_requirements install|check (got {argv!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

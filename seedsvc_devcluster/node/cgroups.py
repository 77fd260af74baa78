"""The pod layer's cgroups (v1 hierarchies, cgroupfs driver): made, joined, emptied and removed here.

Every process of a node (containerd, the kubelet, the shims, every container) lives below one
directory per node in each hierarchy, so :func:`kill_and_remove` finds all of them from the
filesystem alone, even after the process that started them was SIGKILLed. The nodes' directories sit
below this process's own memory cgroup, so containers count against the same memory as the run that
started them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path
from typing import Final

CGROUP_MOUNT: Final = Path("/sys/fs/cgroup")
# The v1 hierarchies the kubelet's cgroupfs driver and runc use; a hierarchy this machine does not
# mount is skipped.
CONTROLLERS: Final = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "hugetlb", "systemd")
# runc and the kubelet also make directories in the cgroup v2 hierarchy of a hybrid machine; the
# cleanup looks there too.
CLEANUP_HIERARCHIES: Final = (*CONTROLLERS, "unified")
KILL_ROUNDS: Final = 50


class CgroupError(RuntimeError):
    """The machine's cgroups are not what the pod layer needs; the message says what is missing."""


def mounted_hierarchies() -> tuple[Path, ...]:
    """The v1 hierarchy directories present here (``/sys/fs/cgroup/memory``, ...)."""
    found = tuple(CGROUP_MOUNT / name for name in CONTROLLERS if (CGROUP_MOUNT / name / "cgroup.procs").is_file())
    if not any(path.name == "memory" for path in found) or not any(path.name == "pids" for path in found):
        raise CgroupError(
            "the real pod layer needs cgroup v1 hierarchies for memory and pids under /sys/fs/cgroup "
            f"(found: {', '.join(p.name for p in found) or 'none'}); use the kubelet stand-in on this machine"
        )
    return found


def own_memory_cgroup() -> str:
    """This process's memory cgroup path ("/" when at the root), from /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path or "/"
    return "/"


def node_root(base: str, node_name: str) -> str:
    """The kubelet's ``cgroupRoot`` for a node: ``<base>/<node name>``."""
    return f"{base.rstrip('/')}/{node_name}"


def make(relative: str) -> list[Path]:
    """Create ``relative`` in every hierarchy; returns the directories that did not exist (parents first).

    A new cpuset directory starts with no CPUs and no memory nodes, so it inherits its parent's.
    """
    created: list[Path] = []
    for hierarchy in mounted_hierarchies():
        path = hierarchy
        for part in Path(relative.strip("/")).parts:
            parent, path = path, path / part
            if path.is_dir():
                continue
            path.mkdir()
            created.append(path)
            if hierarchy.name == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (path / knob).write_text((parent / knob).read_text())
    return created


def join_paths(relative: str) -> tuple[str, ...]:
    """The ``cgroup.procs`` files a process writes its pid into to join ``relative`` everywhere."""
    return tuple(str(hierarchy / relative.strip("/") / "cgroup.procs") for hierarchy in mounted_hierarchies())


def join_self(procs_files: tuple[str, ...]) -> None:
    """In a child between fork and exec: move this process into the given cgroups (syscalls only)."""
    pid = str(os.getpid()).encode()
    for procs in procs_files:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def pids_below(directory: Path) -> set[int]:
    """Every pid in ``directory`` and its descendants (a missing directory has none)."""
    found: set[int] = set()
    for procs in directory.rglob("cgroup.procs") if directory.is_dir() else ():
        with contextlib.suppress(OSError):
            found.update(int(pid) for pid in procs.read_text().split())
    return found


def kill_and_remove(relative: str) -> None:
    """SIGKILL every process below ``relative`` until none is left, then remove its directories.

    Killing repeats because a kubelet or containerd killed in the same round may have forked just
    before; freezing first is not used since a frozen cgroup's tasks cannot be reaped by their parent.
    """
    hierarchies = [CGROUP_MOUNT / name for name in CLEANUP_HIERARCHIES if (CGROUP_MOUNT / name).is_dir()]
    pids_root = CGROUP_MOUNT / "pids" / relative.strip("/")
    for _ in range(KILL_ROUNDS):
        pids = set().union(*(pids_below(h / relative.strip("/")) for h in hierarchies)) if hierarchies else set()
        pids.discard(os.getpid())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    else:
        raise CgroupError(f"processes below {pids_root} survived {KILL_ROUNDS} rounds of SIGKILL")
    for hierarchy in hierarchies:
        _remove_tree(hierarchy / relative.strip("/"))


def remove_dirs(directories: list[Path]) -> None:
    """Remove directories :func:`make` created (deepest first); one still holding others stays."""
    for path in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            _rmdir(path)


def _remove_tree(directory: Path) -> None:
    """rmdir bottom-up (cgroup directories hold only kernel files, which rmdir takes with them)."""
    if not directory.is_dir():
        return
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        _rmdir(child)
    _rmdir(directory)


def _rmdir(directory: Path) -> None:
    for _ in range(20):  # a cgroup whose last task just died stays busy for a moment
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            time.sleep(0.05)
    directory.rmdir()

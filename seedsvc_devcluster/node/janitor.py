"""The janitor: removes everything the pod layer made once the process that started it is gone.

``PodLayer.start`` runs ``python -m seedsvc_devcluster.node.janitor`` in a session of its own with a
pipe on its stdin, then writes what it creates into the plan file as it goes. The janitor blocks on
that pipe; end of file means the layer stopped or its process died (even by SIGKILL), and either
way the janitor kills every process below the nodes' cgroups (containerd, kubelets, shims,
containers), removes those cgroups, the node namespaces, the veths, the fabric bridge and the state
directories. It holds the machine-wide lock of the pod layer until it is done, so no new layer
starts while an old one is being removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Final

from seedsvc_devcluster.node import cgroups, network

# One pod layer per machine: the fabric bridge, the node namespaces and the addresses are fixed.
RUN_DIR: Final = Path("/run/seedsvc-pod-layer")
LOCK_FILE: Final = RUN_DIR / "lock"
PLAN_FILE: Final = RUN_DIR / "plan.json"
# The nodes' Unix sockets: a short path (a socket path may not exceed 108 bytes), and not under /run,
# which is a private tmpfs inside the nodes' mount namespaces.
SOCKET_DIR: Final = Path("/tmp/seedsvc-pod-layer")
STOP_TIMEOUT_S: Final = 120.0


class PodLayerBusy(RuntimeError):
    """Another pod layer runs on this machine (or is still being removed)."""


@dataclass
class Plan:
    """What to remove. Written before each thing is made, so a crash in between leaves nothing unlisted."""

    cgroup_roots: list[str] = field(default_factory=list)
    created_cgroup_dirs: list[str] = field(default_factory=list)
    state_dirs: list[str] = field(default_factory=list)

    def save(self, path: Path = PLAN_FILE) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path = PLAN_FILE) -> Plan:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls(
            cgroup_roots=[str(x) for x in raw.get("cgroup_roots", [])],
            created_cgroup_dirs=[str(x) for x in raw.get("created_cgroup_dirs", [])],
            state_dirs=[str(x) for x in raw.get("state_dirs", [])],
        )


def clean(plan: Plan) -> None:
    """Remove everything ``plan`` lists plus any namespace, veth or bridge of ours (idempotent)."""
    for root in plan.cgroup_roots:
        cgroups.kill_and_remove(root)
    cgroups.remove_dirs([Path(p) for p in plan.created_cgroup_dirs])
    network.remove_all()
    for state in [*plan.state_dirs, str(SOCKET_DIR)]:
        shutil.rmtree(state, ignore_errors=True)


def take_lock() -> IO[bytes]:
    """The machine-wide lock, held open by the janitor until cleanup ends; raises if someone holds it."""
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    handle = LOCK_FILE.open("a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = LOCK_FILE.read_text().strip() or "unknown"
        raise PodLayerBusy(
            f"another real pod layer runs on this machine (janitor pid {holder}); stop it first "
            "(make down, or end the test run that started it)"
        ) from None
    return handle


@dataclass
class Janitor:
    """The running janitor process, from the starting side."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, lock: IO[bytes], log: Path) -> Janitor:
        """Sweep what a crashed earlier layer left (its plan), then start a janitor owning ``lock``."""
        clean(Plan.load())
        Plan().save()
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "seedsvc_devcluster.node.janitor", str(lock.fileno())],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fileno(),),
                start_new_session=True,  # a signal to the test run's process group must not reach it
            )
        lock.seek(0)
        lock.truncate()
        lock.write(str(process.pid).encode())
        lock.flush()
        return cls(process)

    def finish(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Close its pipe (the signal to clean up) and wait until it is done."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self.process.wait(timeout=timeout_s)
        if self.process.returncode != 0:
            raise RuntimeError(f"the pod layer's janitor failed ({self.process.returncode}); see its log")


def main(argv: list[str]) -> int:
    lock_fd = int(argv[0])  # inherited: the lock stays held until this process exits
    while os.read(0, 4096):  # only end of file matters
        pass
    began = time.monotonic()
    try:
        clean(Plan.load())
    finally:
        # The lock, the plan and the nodes' sockets: nothing of the layer stays in /run.
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        os.close(lock_fd)
    print(f"janitor: pod layer removed in {time.monotonic() - began:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

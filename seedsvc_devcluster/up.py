"""A local cluster that outlives the command that started it: ``up`` in the background, ``down`` by its state file.

``up`` starts a supervisor process in a session of its own; the supervisor runs a
:class:`~seedsvc_devcluster.local_cluster.LocalCluster` (control plane and kubelet stand-in, whose
processes die with it) and writes ``<dir>/up.json`` once everything serves. ``down`` sends the
supervisor SIGTERM, which stops the cluster, and waits for it to exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from seedsvc_devcluster import build, polling, processes
from seedsvc_devcluster.kubelet import KubeletOptions
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.paths import REPO_ROOT

DEFAULT_DIR: Final = Path(tempfile.gettempdir()) / "seedsvc-devcluster"
STATE_FILE: Final = "up.json"
LOG_FILE: Final = "up.log"
# Pod IPs of the stand-in `up` runs: clear of the ranges tests (127.0.10-40.x) and `make demo`
# (127.0.50.x) use, so all of them can run at once.
FIRST_POD_IP: Final = "127.0.60.1"
# A warm start takes well under a minute; the bound covers a loaded 2-core machine.
UP_TIMEOUT_S: Final = 300.0
DOWN_TIMEOUT_S: Final = 60.0


class UpError(RuntimeError):
    """``up`` or ``down`` could not do its job; the message says why and where the log is."""


@dataclass(frozen=True)
class UpState:
    """What ``up`` leaves in ``<dir>/up.json`` for people, ``down`` and the other commands."""

    pid: int
    kubeconfig: str
    server: str
    dns: str
    kubectl: str
    startup_seconds: float

    @classmethod
    def read(cls, directory: Path) -> UpState | None:
        try:
            return cls(**json.loads((directory / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, directory: Path) -> None:
        scratch = directory / (STATE_FILE + ".tmp")
        scratch.write_text(json.dumps(asdict(self), indent=1) + "\n")
        scratch.replace(directory / STATE_FILE)  # readers never see half a file


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running_state(directory: Path) -> UpState | None:
    """The state of a cluster ``up`` started in ``directory`` that is still running."""
    state = UpState.read(directory)
    return state if state is not None and is_alive(state.pid) else None


def supervise(directory: Path) -> int:
    """Run the cluster in this process until SIGTERM or SIGINT (the body of the background process)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    options = KubeletOptions(probe=True, first_pod_ip=FIRST_POD_IP)
    try:
        with LocalCluster(directory, kubelet_options=options, bin_dir=build.ensure_built()) as cluster:
            plane = cluster.plane
            UpState(
                pid=os.getpid(),
                kubeconfig=str(plane.kubeconfig),
                server=plane.server,
                dns=f"{plane.dns[0]}:{plane.dns[1]}",
                kubectl=str(build.ensure_built(log=False) / "kubectl"),
                startup_seconds=round(plane.startup_seconds, 1),
            ).write(directory)
            print(f"up: control plane and kubelet stand-in running (pid {os.getpid()})", flush=True)
            while not stop.wait(1.0):
                plane.check_alive()
    finally:
        (directory / STATE_FILE).unlink(missing_ok=True)
    print("up: stopped", flush=True)
    return 0


def up(directory: Path, timeout: float = UP_TIMEOUT_S) -> UpState:
    """Start the supervisor in the background and wait until the cluster serves; returns its state."""
    existing = running_state(directory)
    if existing is not None:
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE_FILE).unlink(missing_ok=True)
    log_path = directory / LOG_FILE
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "seedsvc_devcluster", "supervise", "--dir", str(directory)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not ours to kill when this command exits: `down` does that
        )

    def started() -> UpState | None:
        if supervisor.poll() is not None:
            raise UpError(f"the cluster did not start (exit {supervisor.returncode}):\n{processes.log_tail(log_path)}")
        state = UpState.read(directory)
        return state if state is not None and state.pid == supervisor.pid else None

    try:
        return polling.poll(started, timeout=timeout, what="the local cluster", interval=0.5)
    except polling.PollTimeout as exc:
        processes.kill_group(supervisor.pid, signal.SIGTERM)
        supervisor.wait(DOWN_TIMEOUT_S)
        raise UpError(f"{exc}; log: {log_path}") from None


def down(directory: Path, timeout: float = DOWN_TIMEOUT_S) -> UpState | None:
    """Stop what ``up`` started in ``directory``; returns its state, or None if nothing was up."""
    state = running_state(directory)
    if state is None:
        (directory / STATE_FILE).unlink(missing_ok=True)
        return None
    os.kill(state.pid, signal.SIGTERM)  # the supervisor stops the cluster, newest component first
    try:
        polling.poll(lambda: not is_alive(state.pid), timeout=timeout, what=f"pid {state.pid} to exit", interval=0.2)
    except polling.PollTimeout:
        processes.kill_group(state.pid, signal.SIGKILL)  # its session: every component it started
    (directory / STATE_FILE).unlink(missing_ok=True)
    return state

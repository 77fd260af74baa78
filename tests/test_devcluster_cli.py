"""``python -m seedsvc_devcluster up / statefulset / down``: the local cluster by hand, as a person runs it.

``up`` returns to the shell with the cluster running in the background and prints a kubeconfig that
works; ``statefulset`` applies deploy/'s StatefulSet to it and runs a real sidecar per pod until its
``--for`` runs out; ``down`` stops every process ``up`` started. Bad input exits 2 with one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedsvc_devcluster.paths import REPO_ROOT
from seedsvc_devcluster.up import STATE_FILE, is_alive

# Generous: `up` is a cold start of etcd, kube-apiserver, controllers and CoreDNS on a busy machine.
COMMAND_TIMEOUT_S = 600


def devcluster(*args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "seedsvc_devcluster", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def up_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("up")
    started = devcluster("up", "--dir", str(directory))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield directory
    finally:
        devcluster("down", "--dir", str(directory))


@pytest.mark.controlplane
def test_up_prints_a_kubeconfig_kubectl_can_use(up_dir: Path) -> None:
    state = json.loads((up_dir / STATE_FILE).read_text())
    assert is_alive(state["pid"])
    nodes = subprocess.run(
        [state["kubectl"], "--kubeconfig", state["kubeconfig"], "get", "nodes", "-o", "name"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert nodes.returncode == 0, nodes.stderr
    # The kubelet stand-in registered its three fake nodes.
    assert nodes.stdout.split() == ["node/node-a", "node/node-b", "node/node-c"]
    again = devcluster("up", "--dir", str(up_dir))  # idempotent: reports the running cluster
    assert again.returncode == 0 and state["kubeconfig"] in again.stdout


@pytest.mark.controlplane
def test_statefulset_runs_a_sidecar_per_pod_that_serves_seeds(up_dir: Path) -> None:
    run = devcluster("statefulset", "--dir", str(up_dir), "--replicas", "2", "--for", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    pods = [line.split() for line in run.stdout.splitlines() if line.strip().startswith("cassandra-")]
    assert [p[0] for p in pods] == ["cassandra-0", "cassandra-1"], run.stdout
    ips = [p[1] for p in pods]
    for pod, ip in zip(pods, ips, strict=True):
        # Each sidecar serves the other ready pod as its seed (a pod never seeds from itself when
        # another is ready).
        other = next(i for i in ips if i != ip)
        assert pod[2] == "ready" and pod[-2:] == ["200", other], run.stdout


@pytest.mark.controlplane
def test_down_stops_everything_up_started(tmp_path: Path) -> None:
    started = devcluster("up", "--dir", str(tmp_path))
    assert started.returncode == 0, started.stdout + started.stderr
    pid = json.loads((tmp_path / STATE_FILE).read_text())["pid"]
    children = _descendants(pid)
    assert len(children) >= 4  # etcd, kube-apiserver, kube-controller-manager, CoreDNS
    stopped = devcluster("down", "--dir", str(tmp_path))
    assert stopped.returncode == 0 and str(pid) in stopped.stdout, stopped.stdout + stopped.stderr
    assert not (tmp_path / STATE_FILE).exists()
    assert [p for p in [pid, *children] if is_alive(p)] == []
    assert "nothing is up" in devcluster("down", "--dir", str(tmp_path)).stdout


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children] + [d for c in children for d in _descendants(int(c))]


@pytest.mark.parametrize(
    ("args", "flag", "value"),
    [
        (["statefulset", "--replicas", "0"], "--replicas", "'0'"),
        (["ring", "--replicas", "three"], "--replicas", "'three'"),
        (["up", "--timeout", "-5"], "--timeout", "'-5'"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_flag_and_value(args: list[str], flag: str, value: str) -> None:
    result = devcluster(*args, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and flag in lines[0] and value in lines[0], result.stderr


def test_down_without_up_says_so(tmp_path: Path) -> None:
    result = devcluster("down", "--dir", str(tmp_path), timeout=60)
    assert result.returncode == 0 and "nothing is up" in result.stdout

"""Looking at a real-pod-layer cluster the way an operator does: kubectl exec, logs, HTTP to pods."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from seedsvc_devcluster.deploy_support import run_kubectl

HTTP_TIMEOUT_S: Final = 5.0
_STATUS_LINE = re.compile(r"^(?P<state>[UD][NLJM])\s+(?P<address>\S+)\s", re.MULTILINE)


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message holds its arguments and stderr."""


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        done = run_kubectl(self.binary, list(args), stdin=stdin, kubeconfig=self.kubeconfig)
        if done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done.stdout

    def exec(self, namespace: str, pod: str, container: str, *command: str) -> str:
        return self("exec", "-n", namespace, pod, "-c", container, "--", *command)

    def ring(self, namespace: str, pod: str) -> dict[str, str]:
        """``nodetool status`` in ``pod``'s Cassandra container: address -> state (UN, DN, UJ, ...)."""
        out = self.exec(namespace, pod, "cassandra", "nodetool", "status")
        return {m["address"]: m["state"] for m in _STATUS_LINE.finditer(out)}

    def seeds_in_gossiper(self, namespace: str, pod: str) -> list[str]:
        """``nodetool getseeds``: the seeds Cassandra's Gossiper holds now (from the shim)."""
        out = self.exec(namespace, pod, "cassandra", "nodetool", "getseeds")
        return re.findall(r"\d+\.\d+\.\d+\.\d+", out)


def sidecar_json(pod_ip: str, path: str = "/seeds?format=json") -> tuple[int, dict[str, Any]]:
    """GET the pod's sidecar from the host (through the fabric); (status, JSON body or {})."""
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:8080{path}", timeout=HTTP_TIMEOUT_S) as response:
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}

"""etcd for one control plane: a fresh single-member store, its health and its revision."""

from __future__ import annotations

import shutil
from pathlib import Path

from seedsvc_devcluster.api_client import http_json
from seedsvc_devcluster.controlplane.options import ControlPlaneError


def etcd_argv(binary: Path, data_dir: Path, *, client_url: str, peer_url: str) -> list[str]:
    """A single-member cluster; every start wipes ``data_dir`` (old data would hold objects signed by an old CA)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    return [
        str(binary),
        "--name=seedsvc-test",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=seedsvc-test={peer_url}",
        "--initial-cluster-state=new",
        # A throw-away test store: fsync only costs time here.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def etcd_healthy(client_url: str) -> bool:
    try:
        return bool(http_json("GET", f"{client_url}/health", error=ControlPlaneError).get("health") == "true")
    except (OSError, ValueError, ControlPlaneError):
        return False


def etcd_revision(client_url: str) -> int:
    """Current etcd revision, from the v3 JSON gateway."""
    status = http_json("POST", f"{client_url}/v3/maintenance/status", body={}, error=ControlPlaneError)
    return int(status["header"]["revision"])


def compact_etcd(client_url: str) -> int:
    """Compact etcd up to its current revision now; returns that revision.

    With the watch cache off, a watch or list from any older resourceVersion then gets 410 Gone.
    """
    revision = etcd_revision(client_url)
    try:
        http_json(
            "POST",
            f"{client_url}/v3/kv/compaction",
            body={"revision": str(revision), "physical": True},
            error=ControlPlaneError,
        )
    except ControlPlaneError as exc:
        # Nothing was written since the last compaction: already compacted to this revision.
        if "required revision has been compacted" not in str(exc):
            raise
    return revision

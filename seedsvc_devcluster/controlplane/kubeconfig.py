"""Kubeconfig files for the admin and for each component, certificates embedded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from seedsvc_devcluster.controlplane.pki import KeyPair


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    """A kubeconfig with the certificates embedded. JSON is valid YAML, so no YAML writer is needed."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "seedsvc-test", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}
        ],
        "contexts": [{"name": user, "context": {"cluster": "seedsvc-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path

"""Service-account tokens from the TokenRequest API, and the files a pod sees in its token volume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# One admin request: (method, path, body) -> parsed JSON.
AdminRequest = Callable[[str, str, Any], Any]


def mint_token(
    api: AdminRequest,
    namespace: str,
    service_account: str,
    *,
    expiration_seconds: int = 3600,
    bound_secret: str | None = None,
) -> str:
    """A token from the TokenRequest API, as the kubelet gets for a projected volume.

    Binding it to a Secret lets a test revoke it: once the Secret is deleted the API server rejects
    the token (401). The API server requires expiration_seconds >= 600.
    """
    spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
    if bound_secret is not None:
        secret = api("GET", f"/api/v1/namespaces/{namespace}/secrets/{bound_secret}", None)
        spec["boundObjectRef"] = {
            "kind": "Secret",
            "apiVersion": "v1",
            "name": bound_secret,
            "uid": secret["metadata"]["uid"],
        }
    answer = api(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return str(answer["status"]["token"])


def write_incluster_files(token: str, ca_file: Path, namespace: str, directory: Path) -> Path:
    """Write `token`, `ca.crt` and `namespace` as a pod sees them under
    /var/run/secrets/kubernetes.io/serviceaccount; returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(ca_file.read_bytes())
    (directory / "namespace").write_text(namespace)
    return directory

"""The one small HTTP client of the local cluster: JSON over urllib (admin TLS) and over a kubernetes ApiClient.

urllib serves the control plane before any client library is configured (health checks, admin
requests with a client certificate); :func:`kube_json` sends raw JSON through a ``kubernetes``
ApiClient, so what tests and the kubelet stand-in send and check is exactly what the API server sees.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any, Final

from kubernetes.client import ApiClient

HTTP_TIMEOUT_S: Final = 10.0


class HttpError(RuntimeError):
    """A non-2xx answer; the message has the method, URL, status and the start of the body."""


def http_json(
    method: str,
    url: str,
    *,
    body: Any = None,
    context: ssl.SSLContext | None = None,
    raw: bool = False,
    error: type[Exception] = HttpError,
) -> Any:
    """One request; parsed JSON, or text if ``raw``. Non-2xx answers raise ``error``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S, context=context) as response:
            payload = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        raise error(f"{method} {url} -> {exc.code}: {detail}") from exc
    return payload if raw else json.loads(payload)


def http_ok(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    """True when GET ``url`` answers 200 within the timeout."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S, context=context) as response:
            return int(response.status) == 200
    except OSError:
        return False


def kube_json(
    api_client: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    content_type: str = "application/json",
    timeout_s: float = HTTP_TIMEOUT_S,
) -> Any:
    """One request through a `kubernetes` ApiClient, returning raw JSON (dicts, not models).

    Non-2xx answers raise kubernetes.client.ApiException as the typed methods do.
    """
    method, url, headers, serialized, _ = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=list((query or {}).items()),
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers, body=serialized, _request_timeout=timeout_s)
    response.read()  # type: ignore[no-untyped-call]  # untyped upstream
    return api_client.response_deserialize(response, {"2XX": "object"}).data

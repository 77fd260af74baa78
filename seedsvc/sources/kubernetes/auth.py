"""Where the API server is, how to trust it and how to authenticate to it.

Two ways in: the pod's service-account files (in-cluster) or a kubeconfig (outside a pod; parsed by
the official client's ``kubernetes.aio.config`` so exec plugins, client certificates and OIDC work
as kubectl users expect). Either way the result is an :class:`ApiAccess`: a base URL, an SSL context
that verifies the server against the cluster CA, and credentials that are re-read periodically and at
once after a 401, because projected service-account tokens rotate (about hourly by default:
https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-token-volume).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from seedsvc.settings import Settings


class AccessError(Exception):
    """The API server cannot even be addressed: no configuration, unreadable files, insecure config."""


@dataclass(slots=True)
class Credentials:
    """An ``Authorization`` header value that refreshes itself from ``load``."""

    load: Callable[[], Awaitable[str | None]]
    max_age: float
    clock: Callable[[], float] = time.monotonic
    _value: str | None = None
    _loaded_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def header(self, *, force: bool = False) -> str | None:
        async with self._lock:
            stale = self._loaded_at is None or self.clock() - self._loaded_at >= self.max_age
            if force or stale:
                self._value = await self.load()
                self._loaded_at = self.clock()
            return self._value


@dataclass(slots=True)
class ApiAccess:
    base_url: str
    ssl_context: ssl.SSLContext
    credentials: Credentials
    origin: str
    """Where the configuration came from, for logs and ``seedsvc check``."""
    server_hostname: str | None = None


async def resolve_access(settings: Settings) -> ApiAccess:
    """In-cluster when KUBERNETES_SERVICE_HOST is set and no kubeconfig is named, else the kubeconfig."""
    if settings.kubernetes.kubeconfig is None and settings.kubernetes.host:
        return in_cluster_access(settings)
    kubeconfig = settings.kubernetes.kubeconfig or Path.home() / ".kube" / "config"
    if not await asyncio.to_thread(kubeconfig.exists):
        raise AccessError(
            f"no API server configured: KUBERNETES_SERVICE_HOST is unset and kubeconfig {kubeconfig} "
            "does not exist (set KUBECONFIG or --kubeconfig, or run in a pod)"
        )
    return await kubeconfig_access(kubeconfig, settings)


def in_cluster_access(settings: Settings) -> ApiAccess:
    directory = settings.kubernetes.serviceaccount_dir
    token_file, ca_file = directory / "token", directory / "ca.crt"
    host = settings.kubernetes.host or ""
    port = settings.kubernetes.port or 443
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    context = _verifying_context(ca_file)

    async def read_token() -> str | None:
        try:
            token = (await asyncio.to_thread(token_file.read_text)).strip()
        except OSError as exc:
            raise AccessError(f"cannot read service-account token {token_file}: {exc.strerror}") from None
        return f"Bearer {token}" if token else None

    return ApiAccess(
        base_url=f"https://{netloc}",
        ssl_context=context,
        credentials=Credentials(read_token, max_age=settings.kubernetes.token_reread),
        origin=f"in-cluster ({directory})",
    )


async def kubeconfig_access(path: Path, settings: Settings) -> ApiAccess:
    from kubernetes.aio.client import Configuration
    from kubernetes.aio.config import load_kube_config
    from kubernetes.aio.config.config_exception import ConfigException

    async def load() -> Configuration:
        configuration = Configuration()
        try:
            await load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(path), client_configuration=configuration, persist_config=False
            )
        except (ConfigException, OSError, KeyError, ValueError) as exc:
            raise AccessError(f"cannot use kubeconfig {path}: {exc}") from None
        return configuration

    configuration = await load()
    if not configuration.verify_ssl:
        raise AccessError(
            f"kubeconfig {path} sets insecure-skip-tls-verify: seedsvc always verifies the API server "
            "certificate; give the cluster's certificate-authority instead"
        )
    if not str(configuration.host).startswith("https://"):
        raise AccessError(f"kubeconfig {path}: server {configuration.host!r} is not https")
    context = _verifying_context(Path(configuration.ssl_ca_cert) if configuration.ssl_ca_cert else None)
    if configuration.cert_file and configuration.key_file:
        try:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise AccessError(f"kubeconfig {path}: cannot load client certificate: {exc}") from None
    first = [True]

    async def header() -> str | None:
        # Reloading runs exec plugins and re-reads token files: what kubectl does per invocation.
        current = configuration if first[0] else await load()
        first[0] = False
        value = current.api_key.get("BearerToken") if current.api_key else None
        return str(value) if value else None

    return ApiAccess(
        base_url=str(configuration.host).rstrip("/"),
        ssl_context=context,
        credentials=Credentials(header, max_age=settings.kubernetes.token_reread),
        origin=f"kubeconfig {path}",
        server_hostname=getattr(configuration, "tls_server_name", None) or None,
    )


def _verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify the server certificate and host name; with a CA file, against that CA alone."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise AccessError(f"cannot load cluster CA {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context

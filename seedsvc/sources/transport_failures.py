"""How a failed aiohttp exchange is named: a stable reason for metrics, a phrase for people.

Both HTTP clients (the API server's and the peers') use this one mapping, so a TLS, timeout or connect
failure is counted under the same reason and reads the same whoever the other side is.
"""

from __future__ import annotations

import ssl

import aiohttp


def transport_failure(exc: BaseException, *, other_side: str) -> tuple[str, str] | None:
    """``(reason, detail)`` for a failure of the exchange itself, or None for anything else.

    ``other_side`` names the server in certificate messages ("API server", "peer").
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):  # before ssl's: it subclasses it
        return "tls", f"{other_side} certificate not trusted: {exc.certificate_error}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls", f"{other_side} certificate not trusted: {exc.verify_message}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls", f"TLS failed: {exc}"
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout", "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "unreachable", f"cannot connect: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientError):
        return "unreachable", f"{type(exc).__name__}: {exc}"[:200]
    return None

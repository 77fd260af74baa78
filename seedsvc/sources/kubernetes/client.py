"""The only module that speaks HTTP to the API server: one list call and one watch stream.

aiohttp errors never leave this module: every failure becomes an :class:`ApiError` with a short
``reason`` label (for metrics) and a sentence a person can act on (for logs and ``/readyz``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from seedsvc.sources.keepalive import keepalive_socket
from seedsvc.sources.kubernetes.auth import AccessError, ApiAccess
from seedsvc.sources.transport_failures import transport_failure

CLOSE_WAIT_S = 2.0  # how long a closing client waits for connections still closing
MAX_EVENT_BYTES = 8 * 1024 * 1024
"""Longest watch event line accepted (one JSON object: the event type and the whole object).

An object can be at most etcd's request limit, 1.5 MiB by default (``--max-request-bytes``,
https://etcd.io/docs/v3.5/dev-guide/limit/), and the API server stores built-in kinds as protobuf,
which JSON renders up to a few times larger (field names, quoted strings). 8 MiB is above any object
etcd can hold in that form; real Endpoints and EndpointSlices stay far below it (at most 1,000
endpoints each, a few hundred KiB). Above it the watch fails with reason ``too_large`` (a metric
label, and ``/readyz``'s ``last_error_reason``) rather than buffering without bound."""


class EventTooLarge(ValueError):
    """A watch stream line grew past the limit without ending."""


class LineSplitter:
    """Cuts a byte stream into newline-terminated lines of at most ``limit`` bytes. No I/O.

    aiohttp's ``readuntil`` gives up at its read buffer's high-water mark (512 KiB for the client), below a large
    object, so the watch feeds raw chunks here instead.
    """

    __slots__ = ("_limit", "_partial")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk`` (without their newline); EventTooLarge past the limit."""
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if len(self._partial) + end - start > self._limit:
                raise EventTooLarge(f"a watch event longer than {self._limit} bytes")
            if self._partial:
                self._partial += chunk[start:end]
                lines.append(bytes(self._partial))
                self._partial.clear()
            else:
                lines.append(chunk[start:end])
            start = end + 1
        self._partial += chunk[start:]
        if len(self._partial) > self._limit:
            raise EventTooLarge(f"a watch event longer than {self._limit} bytes")
        return lines

    @property
    def pending(self) -> bytes:
        """What follows the last newline: a cut-off event if anything but blanks."""
        return bytes(self._partial)


class ApiError(Exception):
    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        mid_stream: bool = False,
    ):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        # True when a watch stream that had been opened broke; False when it could not be opened at
        # all (the API server unreachable), which is a failure to report, not a routine reconnect.
        self.mid_stream = mid_stream


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    request: float


class ApiClient:
    """A long-lived aiohttp session bound to one :class:`ApiAccess`."""

    def __init__(self, access: ApiAccess, timeouts: Timeouts) -> None:
        self.access = access
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None
        # Every socket the session opened: a connection closed outside the pool (a watch left
        # mid-stream, a request cancelled in flight) is no longer tracked by aiohttp, and a TLS close
        # needs a few loop turns to finish.
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    async def __aenter__(self) -> ApiClient:
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context, limit=4, socket_factory=self._socket)
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"Accept": "application/json", "User-Agent": "seedsvc"}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        # So that nothing is left half-closed when the caller's loop ends right after (a sidecar
        # shutting down, a test). Bounded: a partitioned peer never answers the TLS close. Polled:
        # nothing signals that a socket closed outside the pool.
        deadline = time.monotonic() + CLOSE_WAIT_S
        while any(s.fileno() != -1 for s in self._sockets) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def _socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        sock = keepalive_socket(addr_info)
        self._sockets.add(sock)
        return sock

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One request answered within the request timeout, decoded as a JSON object."""
        timeout = aiohttp.ClientTimeout(
            total=self.timeouts.connect + self.timeouts.request,
            sock_connect=self.timeouts.connect,
            sock_read=self.timeouts.request,
        )
        async with self._request("GET", path, params, timeout) as response:
            await self._raise_for_status(response, path)
            try:
                body = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError) as exc:
                raise ApiError("bad_response", f"GET {path}: response is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ApiError("bad_response", f"GET {path}: expected a JSON object")
            return body

    async def post(self, path: str, document: Mapping[str, Any]) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(
            total=self.timeouts.connect + self.timeouts.request, sock_connect=self.timeouts.connect
        )
        async with self._request("POST", path, None, timeout, json_body=document) as response:
            await self._raise_for_status(response, path)
            body = await response.json(content_type=None)
            if not isinstance(body, dict):
                raise ApiError("bad_response", f"POST {path}: expected a JSON object")
            return body

    async def watch(
        self, path: str, params: Mapping[str, str], *, server_timeout: float
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield watch events until the server closes the stream.

        The read timeout is the server-side timeout plus the request timeout, so a stream that goes
        silent (a dead connection nobody closed) is abandoned instead of waited on forever.
        """
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.timeouts.connect,
            sock_read=server_timeout + self.timeouts.request,
        )
        async with self._request("GET", path, params, timeout) as response:
            await self._raise_for_status(response, path)
            lines = LineSplitter(MAX_EVENT_BYTES)
            try:
                async for chunk in response.content.iter_any():
                    for line in lines.feed(chunk):
                        if line and not line.isspace():
                            yield _event(line, path)
            except EventTooLarge:
                raise ApiError("too_large", f"watch {path}: an event of more than {MAX_EVENT_BYTES // 2**20} MiB; "
                               "the object is larger than Kubernetes can store, or the stream is not JSON lines"
                               ) from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise ApiError(
                    "timeout", f"watch {path}: no data for {timeout.sock_read:.0f}s", mid_stream=True
                ) from None
            except aiohttp.ClientPayloadError as exc:
                raise ApiError("closed", f"watch {path}: stream broken: {exc}", mid_stream=True) from None
            except aiohttp.ClientError as exc:
                raise ApiError("unreachable", f"watch {path}: {exc}") from None
            if lines.pending.strip():
                raise ApiError("closed", f"watch {path}: stream cut mid-event", mid_stream=True)

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
        json_body: Mapping[str, Any] | None = None,
    ) -> _Request:
        return _Request(self, method, path, params, timeout, json_body)

    async def _raise_for_status(self, response: aiohttp.ClientResponse, path: str) -> None:
        if response.status < 400:
            return
        message = await _status_message(response)
        status = response.status
        verb = response.method
        if status == 401:
            raise ApiError("unauthorized", f"{verb} {path}: 401 Unauthorized: {message}", status=status)
        if status == 403:
            raise ApiError("forbidden", f"{verb} {path}: 403 Forbidden: {message}", status=status)
        if status == 404:
            raise ApiError("not_found", f"{verb} {path}: 404 Not Found: {message}", status=status)
        if status == 410:
            raise ApiError("expired", f"{verb} {path}: 410 Gone: {message}", status=status)
        retry_after = _retry_after(response.headers.get("Retry-After"))
        reason = "throttled" if status == 429 else "server_error"
        raise ApiError(reason, f"{verb} {path}: {status}: {message}", status=status, retry_after=retry_after)


class _Request:
    """Async context manager that authenticates, sends, and maps transport errors to ApiError."""

    def __init__(
        self,
        client: ApiClient,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
        json_body: Mapping[str, Any] | None,
    ) -> None:
        self._client, self._method, self._path = client, method, path
        self._params, self._timeout, self._json = params, timeout, json_body
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        client = self._client
        if client._session is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        headers: dict[str, str] = {}
        try:
            authorization = await client.access.credentials.header()
        except AccessError as exc:
            raise ApiError("credentials", str(exc)) from None
        if authorization:
            headers["Authorization"] = authorization
        url = client.access.base_url + self._path
        try:
            self._response = await client._session.request(
                self._method,
                url,
                params=self._params,
                headers=headers,
                json=self._json,
                timeout=self._timeout,
                server_hostname=client.access.server_hostname,
            )
        except (TimeoutError, ssl.SSLError, aiohttp.ClientError) as exc:
            failure = transport_failure(exc, other_side="API server")
            if failure is None:
                raise
            reason, detail = failure
            raise ApiError(reason, f"{self._method} {url}: {detail}") from None
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.release()


def _event(line: bytes, path: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        raise ApiError("bad_response", f"watch {path}: event is not JSON: {line[:80]!r}") from None
    if not isinstance(event, dict):
        raise ApiError("bad_response", f"watch {path}: event is not an object: {line[:80]!r}")
    return event


async def _status_message(response: aiohttp.ClientResponse) -> str:
    """The ``message`` of a Kubernetes Status body, else the start of the body."""
    try:
        text = await asyncio.wait_for(response.text(), timeout=5)
    except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError):
        return response.reason or ""
    try:
        status = json.loads(text)
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return str(status["message"])
    except ValueError:
        pass
    return text.strip()[:300] or (response.reason or "")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, min(float(value), 300.0)) if value else None
    except ValueError:
        return None

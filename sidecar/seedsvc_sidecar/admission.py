"""Who gets a connection, and for how long: caps, timeouts, and the trusted callers they never refuse.

Any pod in the cluster can reach the sidecar's port; the pod's own Cassandra (through the Java shim)
and its exec probes reach it on loopback. So every connection from elsewhere counts against a cap,
is closed when it dawdles over its headers or sits idle, and may hold only a bounded number of
long-polls; trusted callers (loopback by default) are timed out the same way but never refused.
The file-descriptor headroom kept below the cap is what keeps them servable at the cap, and keeps
``accept()`` from failing with EMFILE for everyone.

A :class:`GuardedConnection` sits in front of each of aiohttp's request handlers, delegating every
protocol call to it; :class:`GuardedSite` listens with it. Counting is plain arithmetic on
:class:`Admission`; the limits are :class:`Limits` (from the ``--http-*`` settings).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from seedsvc.settings import Settings
from seedsvc_sidecar.memory import release_memory
from seedsvc_sidecar.metrics import Metrics

log = logging.getLogger("seedsvc.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FD_RESERVE = 384
"""File descriptors kept free below the untrusted-connection cap. Under a flood they go to: sockets
accepted but not yet judged (asyncio accepts up to BACKLOG per loop turn, and a refused socket is
only released a turn after its close: two turns' worth, 256), refusals lingering (SHED_LINGER_MAX),
trusted callers, the API client and DNS sockets, the state file and logs. Measured: with 256 held
back, 1,100 connections against an fd limit of 1024 still made accept() fail with EMFILE."""

BACKLOG = 128
"""The listen backlog (aiohttp's default): also how many connections asyncio accepts per loop turn."""

SHED_LINGER = 1.0
"""Seconds a refused connection is kept half-closed after its 503, so the client reads the answer
instead of a reset (closing a socket with unread input makes the kernel send RST)."""

SHED_LINGER_MAX = 32
"""Refused connections lingering at once; beyond this a refusal is an immediate close, so a flood of
connects cannot pin descriptors through the refusal path."""

REFUSAL_RETRY_AFTER = 5
"""Retry-After of a refusal at a cap: long enough that a refused poller does not come straight back
and keep the server busy refusing it, short enough that a real client recovers within seconds."""

RELIEF_MIN_PEAK = 200
"""Open connections a burst must reach before its end triggers a garbage collection (see memory.py);
below that the interpreter's own collections keep up and a full one would only cost time."""

RELIEF_QUIET = 1.0
"""Seconds without a closed connection after which a drained burst counts as over: by then the
handlers of its connections have finished, so their garbage exists and one collection gets it all."""

RELIEF_MAX_DELAY = 10.0
"""The longest a collection waits for a quiet second, so steady traffic after a burst cannot defer it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The HTTP server's limits, from the ``--http-*`` settings (which hold the defaults and their
    reasons: docs/http-api.md, "Limits"); durations in seconds."""

    header_timeout: float
    idle_timeout: float
    max_connections: int
    max_long_polls: int
    trusted: tuple[Network, ...]

    @classmethod
    def defaults(cls) -> Limits:
        return cls.from_settings(Settings())

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            header_timeout=settings.http.header_timeout,
            idle_timeout=settings.http.idle_timeout,
            max_connections=settings.http.max_connections,
            max_long_polls=settings.http.max_long_polls,
            trusted=tuple(ipaddress.ip_network(text) for text in settings.http.trusted_networks),
        )


def is_trusted(peername: Any, trusted: Iterable[Network]) -> bool:
    """Whether a socket peer (as ``transport.get_extra_info("peername")`` gives it) is trusted.

    An IPv4 peer of a dual-stack socket arrives as ``::ffff:a.b.c.d`` and is judged as IPv4. A peer
    without an address (a Unix socket) is local, hence trusted.
    """
    if not isinstance(peername, tuple) or not peername:
        return True
    try:
        address = ipaddress.ip_address(str(peername[0]).partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def connection_cap(requested: int, fd_limit: int | None) -> int:
    """The untrusted-connection cap actually enforced: ``requested``, lowered to keep FD_RESERVE
    descriptors free below the process's soft fd limit (``None``: unlimited)."""
    if fd_limit is None or fd_limit < 0:
        return requested
    return max(1, min(requested, fd_limit - FD_RESERVE))


def soft_fd_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def refusal_bytes(reason: str) -> bytes:
    """A complete HTTP/1.1 503 for a connection refused before its request was read."""
    body = f"{reason}\n".encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Cache-Control: no-store\r\n"
        f"Retry-After: {REFUSAL_RETRY_AFTER}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Admission:
    """Counts connections and long-polls by trust, decides admissions, and notices bursts ending."""

    limits: Limits
    metrics: Metrics
    max_connections: int = 0
    """The enforced cap (see :func:`connection_cap`); 0 until :meth:`start` reads the fd limit."""
    connections: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    long_polls: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    lingering: int = 0
    _peak: int = 0
    _relief: asyncio.TimerHandle | None = None
    _burst_ended_at: float = 0.0
    _last_close_at: float = 0.0

    def start(self, fd_limit: int | None) -> None:
        self.max_connections = connection_cap(self.limits.max_connections, fd_limit)
        if self.max_connections < self.limits.max_connections:
            log.warning("http: at most %d connections from untrusted callers (not %d): the fd limit is %s "
                        "and %d descriptors stay free for trusted callers", self.max_connections,
                        self.limits.max_connections, fd_limit, FD_RESERVE)
        self.metrics.watch_http(self)

    def stop(self) -> None:
        if self._relief is not None:
            self._relief.cancel()
            self._relief = None

    def trusts(self, peername: Any) -> bool:
        return is_trusted(peername, self.limits.trusted)

    def open(self, trusted: bool) -> bool:
        """Count a new connection in, or refuse it (False) when it is untrusted and over the cap."""
        cap = self.max_connections or self.limits.max_connections
        if not trusted and self.connections[False] >= cap:
            self.metrics.http_refused.labels(reason="connections").inc()
            return False
        self.connections[trusted] += 1
        self._peak = max(self._peak, self.connections[True] + self.connections[False])
        return True

    def close(self, trusted: bool) -> None:
        self.connections[trusted] -= 1
        total = self.connections[True] + self.connections[False]
        # The end of a burst: its per-connection garbage sits in reference cycles (asyncio's socket
        # transports refer to themselves) that only a full collection frees, and until then it pins
        # the interpreter's memory arenas (see memory.py). One collection once the burst has drained
        # and its handlers have finished, not one per closed connection.
        loop = asyncio.get_running_loop()
        self._last_close_at = loop.time()
        if self._peak >= RELIEF_MIN_PEAK and total <= self._peak // 4 and self._relief is None:
            self._burst_ended_at = self._last_close_at
            self._relief = loop.call_later(RELIEF_QUIET, self._relieve)

    def _relieve(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Still draining (closes within the last RELIEF_QUIET seconds)? Wait on, but not for ever.
        if now - self._last_close_at < RELIEF_QUIET and now - self._burst_ended_at < RELIEF_MAX_DELAY:
            self._relief = loop.call_later(RELIEF_QUIET, self._relieve)
            return
        self._relief = None
        self._peak = self.connections[True] + self.connections[False]
        release_memory()

    def begin_long_poll(self, trusted: bool) -> bool:
        """Count a long-poll in, or refuse it (False) when it is untrusted and over the cap."""
        if not trusted and self.long_polls[False] >= self.limits.max_long_polls:
            self.metrics.http_refused.labels(reason="long_polls").inc()
            return False
        self.long_polls[trusted] += 1
        return True

    def end_long_poll(self, trusted: bool) -> None:
        self.long_polls[trusted] -= 1

    def connection(self, make_handler: Callable[[], asyncio.Protocol]) -> asyncio.Protocol:
        """The protocol for one accepted connection (a ``create_server`` protocol factory's result)."""
        return GuardedConnection(self, make_handler)


class GuardedConnection(asyncio.Protocol):
    """One connection: admitted or refused on arrival, then timed while it is not in a request.

    Two clocks, never both running: the header clock (``header_timeout``) from arrival, and from
    the first byte of each later request, until the app sees the request; the idle clock
    (``idle_timeout``) from the end of each request. Either expiring closes the connection, so a
    connection that never completes a request holds its slot for ``header_timeout`` at most, like
    nginx's ``client_header_timeout``. A request in progress (a long-poll) is not timed here: its
    own ``wait`` bounds it.
    """

    __slots__ = ("_admission", "_busy", "_handler", "_lingers", "_make_handler", "_phase", "_timer", "_transport",
                 "trusted")

    def __init__(self, admission: Admission, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self._admission = admission
        self._make_handler = make_handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""
        self._busy = False
        self._lingers = False
        self.trusted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.trusted = self._admission.trusts(transport.get_extra_info("peername"))
        if not self._admission.open(self.trusted):
            self._refuse(transport)
            return
        self._handler = self._make_handler()
        self._arm(self._admission.limits.header_timeout, "header")
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            return  # a refused connection: its request is read and dropped
        if not self._busy and self._phase == "idle":
            self._arm(self._admission.limits.header_timeout, "header")
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._handler is None:
            if self._lingers:
                self._admission.lingering -= 1
            return
        self._admission.close(self.trusted)
        handler, self._handler = self._handler, None
        handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    # --- called by the app (serving.py) around each request -----------------------------------------

    def request_started(self) -> None:
        self._busy = True
        self._disarm()

    def request_finished(self) -> None:
        self._busy = False
        if self._handler is not None:
            self._arm(self._admission.limits.idle_timeout, "idle")

    # --- timers and refusal ---------------------------------------------------------------------------

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire, phase)

    def _disarm(self) -> None:
        self._phase = ""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, phase: str) -> None:
        self._timer, self._phase = None, ""
        self._admission.metrics.http_timeouts.labels(phase=phase).inc()
        if self._transport is not None:
            self._transport.close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        transport.write(refusal_bytes("too many connections; try again later"))
        admission = self._admission
        if admission.lingering >= SHED_LINGER_MAX or not transport.can_write_eof():
            transport.close()
            return
        admission.lingering += 1
        self._lingers = True
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(SHED_LINGER, transport.abort)


class GuardedSite(web.BaseSite):
    """A TCP site whose every connection goes through :class:`Admission` (aiohttp's TCPSite, with
    the protocol factory wrapped)."""

    __slots__ = ("_admission", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, admission: Admission) -> None:
        super().__init__(runner)
        self._host, self._port, self._admission = host, port, admission

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        admission = self._admission
        admission.start(soft_fd_limit())
        self._server = await asyncio.get_running_loop().create_server(
            lambda: admission.connection(server), self._host, self._port, backlog=BACKLOG
        )

    async def stop(self) -> None:
        await super().stop()
        self._admission.stop()

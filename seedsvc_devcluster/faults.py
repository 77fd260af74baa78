"""Fault injection the real components cannot do on demand (each class says which fault and why).

:class:`TcpProxy` sits between a client and a real server on loopback and can partition them: it
cuts open connections and holds new ones unanswered until :meth:`TcpProxy.heal`. It forwards bytes
untouched (TLS passes through end to end), so the client still talks to the real server; the proxy
only decides *when*. Tests use it where timing must be exact, e.g. to make changes while a watcher
is cut off and prove it catches up through a 410 relist.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class TcpProxy:
    upstream_host: str
    upstream_port: int
    listen_host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None
    _partitioned: bool = False
    _stopping: bool = False
    _healed: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> TcpProxy:
        self._healed.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._stopping = True
        self.heal()  # held connections wake up, see _stopping and end; open ones are cut below
        self.cut()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    def partition(self) -> None:
        """Cut every open connection; hold new ones (accepted, never answered) until heal()."""
        self._partitioned = True
        self._healed.clear()
        self.cut()

    def heal(self) -> None:
        self._partitioned = False
        self._healed.set()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await self._healed.wait()
            if self._stopping:
                return
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.close()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class HidingApiProxy:
    """An HTTPS reverse proxy in front of a real API server that answers 404 for some path prefixes.

    Kubernetes 1.34+ cannot run without the EndpointSlice API (its own controllers watch it), so a
    cluster that lacks it, as pre-1.21 clusters did, cannot be produced with a real API server; this
    proxy produces exactly the answer such a cluster gives (404 on the group's paths) and forwards every
    other request, bodies streamed, to the real server. It terminates TLS with its own certificate and
    forwards the client's Authorization header, so use it with token (in-cluster) credentials.
    """

    def __init__(
        self, upstream: str, upstream_ca: str, *, cert: str, key: str, hidden_prefixes: tuple[str, ...]
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.hidden_prefixes = hidden_prefixes
        self.hidden_requests = 0
        self._upstream_ssl = ssl.create_default_context(cafile=upstream_ca)
        self._server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_ssl.load_cert_chain(cert, key)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def start(self) -> HidingApiProxy:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._upstream_ssl))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        # In-flight watches never finish on their own; do not wait for them on stop().
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
            # Closed transports finish closing on the next loop iterations; a test that ends first
            # sees them as unclosed sockets (ResourceWarning).
            await asyncio.sleep(0.25)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(self.hidden_prefixes):
            self.hidden_requests += 1
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "message": "the server could not find the requested resource",
                "code": 404,
            }
            return web.json_response(status, status=404)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept", "content-type")}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                # The client went away mid-stream (a watch it gave up on): drop the upstream stream too,
                # rather than leave its connection to the garbage collector.
                upstream.close()
            return response

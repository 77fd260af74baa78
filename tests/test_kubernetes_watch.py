"""The watch protocol of the Kubernetes source, fast, against a local fault injector.

``FakeApiServer`` is an aiohttp server on loopback standing in for kube-apiserver's EndpointSlice
list and watch: a fault injector, used because the real API server (tests/test_kubernetes_source.py)
cannot be made on demand to cut a stream mid-event, send a garbage line, a 410 at a chosen moment,
or an event larger than any object it would store. Each watch request plays the next script of raw
lines, then ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, Restart, SourceEvent, View
from seedsvc.sources.kubernetes import KubernetesSource
from seedsvc.sources.kubernetes.auth import ApiAccess, Credentials
from seedsvc.sources.kubernetes.client import MAX_EVENT_BYTES, EventTooLarge, LineSplitter

PATH = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
WAIT = 30.0  # "does not hang" bound; each step takes milliseconds


def endpoint_slice(name: str, version: str, addresses: list[str], *, padding: int = 0) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": version,
                                "labels": {"kubernetes.io/service-name": "cassandra"}}
    if padding:
        metadata["annotations"] = {"example.com/padding": "x" * padding}
    return {
        "metadata": metadata,
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True},
                       "targetRef": {"kind": "Pod", "name": f"cassandra-{i}"}} for i, a in enumerate(addresses)],
    }


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class FakeApiServer:
    def __init__(self) -> None:
        self.listing: list[dict[str, Any]] = []
        self.list_version = "1"
        self.lists = 0
        self.watch_versions: list[str] = []
        self.scripts: asyncio.Queue[list[bytes]] = asyncio.Queue()
        # Cleared: watch requests are accepted but never answered (what a partition looks like to a
        # client whose connection attempt got no further), until set again.
        self.answering_watches = asyncio.Event()
        self.answering_watches.set()
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            self.lists += 1
            return web.json_response({"metadata": {"resourceVersion": self.list_version}, "items": self.listing})
        self.watch_versions.append(request.query["resourceVersion"])
        await self.answering_watches.wait()
        script = await self.scripts.get()  # no script yet: the stream stays open and silent
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for piece in script:
            await response.write(piece)
        await response.write_eof()
        return response

    async def access(self, settings: Settings) -> ApiAccess:
        async def no_token() -> str | None:
            return None

        return ApiAccess(base_url=str(self.server.make_url("")).rstrip("/"), ssl_context=ssl.create_default_context(),
                         credentials=Credentials(no_token, max_age=60), origin="fault injector")


class Recorder:
    def __init__(self, source: KubernetesSource) -> None:
        self.events: list[SourceEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(source))

    async def _run(self, source: KubernetesSource) -> None:
        async for event in source.updates():
            self.events.append(event)
            self._changed.set()

    async def until(self, condition: Callable[[list[SourceEvent]], bool]) -> list[SourceEvent]:
        """Wait for ``condition`` on the events (or on the fake server's records: hence the polling)."""
        async with asyncio.timeout(WAIT):
            while not condition(self.events):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        for _ in range(8):  # release any watch still waiting for a script
            fake.scripts.put_nowait([])
        await fake.server.close()


@pytest.fixture
async def recorder(api: FakeApiServer) -> AsyncIterator[Recorder]:
    settings = Settings.build(namespace="ns", service="cassandra", api="endpointslices", backoff_max=0.2)
    recording = Recorder(KubernetesSource(settings, resolve=api.access))
    try:
        yield recording
    finally:
        await recording.stop()


def views(events: list[SourceEvent]) -> list[View]:
    return [event for event in events if isinstance(event, View)]


def addresses(view: View) -> set[str]:
    return {endpoint.address for endpoint in view.endpoints}


def failures(events: list[SourceEvent]) -> list[Failure]:
    return [event for event in events if isinstance(event, Failure)]


async def test_an_event_larger_than_aiohttps_read_buffer_is_read_whole(api: FakeApiServer, recorder: Recorder) -> None:
    big = endpoint_slice("big", "2", [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(1000)], padding=500_000)
    assert len(line("ADDED", big)) > 600_000
    api.scripts.put_nowait([line("ADDED", big)])
    events = await recorder.until(lambda e: len(views(e)) >= 2)
    assert len(addresses(views(events)[-1])) == 1000
    assert not failures(events)


async def test_an_event_over_the_limit_fails_clearly_and_is_retried(api: FakeApiServer, recorder: Recorder) -> None:
    api.scripts.put_nowait([line("ADDED", endpoint_slice("huge", "2", ["10.0.0.1"], padding=MAX_EVENT_BYTES))])
    events = await recorder.until(lambda e: bool(failures(e)))
    failure = failures(events)[0]
    assert failure.reason == "too_large" and "8 MiB" in failure.detail
    await recorder.until(lambda e: api.lists >= 2)  # relisted after the backoff, not given up


async def test_a_410_inside_the_stream_relists(api: FakeApiServer, recorder: Recorder) -> None:
    api.listing = [endpoint_slice("a", "1", ["10.0.0.1"])]
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    api.scripts.put_nowait([json.dumps(expired).encode() + b"\n"])
    await recorder.until(lambda e: any(isinstance(x, Restart) and x.reason == "expired" for x in e))
    api.listing = [endpoint_slice("a", "7", ["10.0.0.1", "10.0.0.2"])]
    api.list_version = "7"
    events = await recorder.until(lambda e: len(views(e)) >= 2 and api.watch_versions[-1] == "7")
    assert api.lists == 2 and addresses(views(events)[-1]) == {"10.0.0.1", "10.0.0.2"}


async def test_bookmarks_move_the_resume_point_without_a_new_view(api: FakeApiServer, recorder: Recorder) -> None:
    api.listing = [endpoint_slice("a", "1", ["10.0.0.1"])]
    bookmark = {"type": "BOOKMARK", "object": {"kind": "EndpointSlice", "metadata": {"resourceVersion": "42"}}}
    api.scripts.put_nowait([json.dumps(bookmark).encode() + b"\n"])
    await recorder.until(lambda e: len(api.watch_versions) >= 2)
    assert api.watch_versions == ["1", "42"] and api.lists == 1
    assert len(views(recorder.events)) == 1


async def test_a_stream_cut_mid_event_resumes_without_relisting(api: FakeApiServer, recorder: Recorder) -> None:
    api.listing = [endpoint_slice("a", "1", ["10.0.0.1"])]
    whole = line("MODIFIED", endpoint_slice("a", "5", ["10.0.0.1", "10.0.0.5"]))
    cut = line("MODIFIED", endpoint_slice("a", "6", ["10.0.0.6"]))[:40]
    api.scripts.put_nowait([whole, cut])
    events = await recorder.until(lambda e: len(api.watch_versions) >= 2)
    assert any(isinstance(x, Restart) and x.reason == "closed" for x in events)
    assert api.watch_versions == ["1", "5"] and api.lists == 1
    assert addresses(views(events)[-1]) == {"10.0.0.1", "10.0.0.5"}, "half an event is never applied"


async def test_a_watch_that_never_opens_is_a_failure_then_a_relist_not_a_routine_reconnect(
    api: FakeApiServer,
) -> None:
    # A stream that broke is resumed quietly (Restart); a watch that could not even be opened is the
    # API server being out of reach: a Failure (the list is marked stale), then a relist after the
    # backoff. Before, both were resumed quietly, so a partitioned sidecar never went stale.
    settings = Settings.build(
        namespace="ns", service="cassandra", api="endpointslices", backoff_max=0.2, watch_timeout=1, request_timeout=0.2
    )
    api.listing = [endpoint_slice("a", "1", ["10.0.0.1"])]
    api.answering_watches.clear()
    recording = Recorder(KubernetesSource(settings, resolve=api.access))
    try:
        events = await recording.until(lambda e: bool(failures(e)))
        assert failures(events)[0].reason == "timeout"
        assert not any(isinstance(x, Restart) for x in events), "an unopened watch is no routine reconnect"
        await recording.until(lambda e: api.lists >= 2)  # relisted after the backoff
        api.answering_watches.set()
        api.listing = [endpoint_slice("a", "2", ["10.0.0.1", "10.0.0.2"])]
        api.list_version = "2"
        events = await recording.until(lambda e: addresses(views(e)[-1]) == {"10.0.0.1", "10.0.0.2"})
    finally:
        await recording.stop()


async def test_a_garbage_line_is_a_bad_response_and_relists(api: FakeApiServer, recorder: Recorder) -> None:
    api.listing = [endpoint_slice("a", "1", ["10.0.0.1"])]
    api.scripts.put_nowait([b"<html>proxy error</html>\n"])
    events = await recorder.until(lambda e: bool(failures(e)) and api.lists >= 2)
    assert failures(events)[0].reason == "bad_response" and "proxy error" in failures(events)[0].detail


async def test_events_split_across_chunks_and_blank_lines_are_read_as_sent(
    api: FakeApiServer, recorder: Recorder
) -> None:
    event = line("ADDED", endpoint_slice("b", "3", ["10.0.0.3"]))
    api.scripts.put_nowait([b"\n", event[:7], event[7:20], event[20:] + b"\r\n\n"])
    events = await recorder.until(lambda e: len(views(e)) >= 2)
    assert addresses(views(events)[-1]) == {"10.0.0.3"} and not failures(events)


def test_line_splitter_bounds_a_line_whatever_the_chunking() -> None:
    splitter = LineSplitter(10)
    assert splitter.feed(b"abc\nde") == [b"abc"]
    assert splitter.feed(b"f\n\n0123456789\n") == [b"def", b"", b"0123456789"]
    assert splitter.pending == b""
    with pytest.raises(EventTooLarge):
        splitter.feed(b"0123456789x")
    splitter = LineSplitter(10)
    splitter.feed(b"012345")
    with pytest.raises(EventTooLarge):
        splitter.feed(b"6789ab\n")

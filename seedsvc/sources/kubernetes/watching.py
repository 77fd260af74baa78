"""List-then-watch of one Service's EndpointSlices (or v1 Endpoints), in three layers:

* :meth:`KubernetesSource.updates` loops forever: it resolves access, keeps one client session and
  retries failures with capped, jittered backoff;
* :meth:`KubernetesSource._list_and_watch` is one cycle: list, then watch from the list's
  resourceVersion until the server says 410 Gone, which sends it back to list;
* :meth:`ApiClient.watch` is one HTTP stream, with ``allowWatchBookmarks`` and a client-side
  inactivity bound.

The same shape as client-go's reflector: https://github.com/kubernetes/client-go/blob/master/tools/cache/reflector.go
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from seedsvc.records import Endpoint
from seedsvc.settings import Settings
from seedsvc.sources.backoff import Backoff
from seedsvc.sources.events import Failure, Restart, SourceEvent, View
from seedsvc.sources.kubernetes.auth import AccessError, ApiAccess, resolve_access
from seedsvc.sources.kubernetes.client import ApiClient, ApiError, Timeouts
from seedsvc.sources.kubernetes.parsing import Parsed, from_endpoint_slices, from_endpoints

log = logging.getLogger("seedsvc.kubernetes")

# A watch that ends this soon without a single event is a hot loop in the making (a proxy closing
# streams at once, say): back off instead of reconnecting immediately.
VERY_SHORT_WATCH = 1.0


@dataclass(frozen=True, slots=True)
class Resource:
    """One way of asking for a Service's endpoints."""

    kind: str
    path: str
    selector: Mapping[str, str]
    parse: Callable[[list[dict[str, Any]]], Parsed]


def endpoint_slices(namespace: str, service: str) -> Resource:
    # https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#ownership
    return Resource(
        kind="endpointslices",
        path=f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        selector={"labelSelector": f"kubernetes.io/service-name={service}"},
        parse=from_endpoint_slices,
    )


def v1_endpoints(namespace: str, service: str) -> Resource:
    # Deprecated since Kubernetes 1.33, still served: only used when EndpointSlices are absent or asked for.
    return Resource(
        kind="endpoints",
        path=f"/api/v1/namespaces/{namespace}/endpoints",
        selector={"fieldSelector": f"metadata.name={service}"},
        parse=from_endpoints,
    )


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): relist."""


class _FallBack(Exception):
    """The EndpointSlice API is not served: switch to v1 Endpoints."""


class KubernetesSource:
    """Yields the endpoints of ``settings.discovery.service`` each time they change."""

    def __init__(
        self,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        resolve: Callable[[Settings], Awaitable[ApiAccess]] = resolve_access,
    ) -> None:
        """``resolve`` finds the API server; tests inject one that points at a local fault injector."""
        self._settings = settings
        self._rng = rng or random.Random()
        self._resolve = resolve
        self._use_endpoints = settings.kubernetes.api == "endpoints"
        self.resource_kind = "endpoints" if self._use_endpoints else "endpointslices"

    @property
    def name(self) -> str:
        return "kubernetes"

    def _resource(self) -> Resource:
        make = v1_endpoints if self._use_endpoints else endpoint_slices
        return make(self._settings.discovery.namespace, self._settings.discovery.service)

    async def updates(self) -> AsyncIterator[SourceEvent]:
        settings = self._settings
        backoff = Backoff(maximum=settings.discovery.backoff_max, rng=self._rng)
        while True:
            try:
                access = await self._resolve(settings)
            except AccessError as exc:
                yield Failure("config", str(exc), retry_in=(delay := backoff.next_delay()))
                await asyncio.sleep(delay)
                continue
            except Exception as exc:  # kubeconfig plugins run arbitrary code: never let that end discovery
                log.exception("unexpected error loading the API server configuration")
                delay = backoff.next_delay()
                yield Failure("config", f"unexpected {type(exc).__name__}: {exc}", retry_in=delay)
                await asyncio.sleep(delay)
                continue
            log.info("watching %s of service %s/%s via %s", self.resource_kind, settings.discovery.namespace,
                     settings.discovery.service, access.origin)
            timeouts = Timeouts(settings.kubernetes.connect_timeout, settings.kubernetes.request_timeout)
            async with ApiClient(access, timeouts) as client:
                while True:
                    try:
                        async for event in self._list_and_watch(client, backoff):
                            yield event
                    except ApiError as exc:
                        delay = max(backoff.next_delay(), exc.retry_after or 0.0)
                        if exc.reason == "unauthorized":
                            # The token may have rotated under us: re-read it before the next try.
                            await _refresh(client)
                        yield Failure(exc.reason, exc.detail, retry_in=delay)
                        await asyncio.sleep(delay)
                    except _FallBack:
                        self._use_endpoints = True
                        self.resource_kind = "endpoints"
                        log.warning("EndpointSlice API not served; falling back to v1 Endpoints")
                        yield Restart("fallback-to-endpoints")
                    except Exception as exc:  # a bug must not end discovery: report it and go on
                        log.exception("unexpected error in the Kubernetes source")
                        delay = backoff.next_delay()
                        yield Failure("internal", f"unexpected {type(exc).__name__}: {exc}", retry_in=delay)
                        await asyncio.sleep(delay)

    async def _list_and_watch(self, client: ApiClient, backoff: Backoff) -> AsyncIterator[SourceEvent]:
        """List, yield the view, then watch until expiry; returns to let the caller relist."""
        resource = self._resource()
        try:
            listing = await client.get(resource.path, resource.selector)
        except ApiError as exc:
            if exc.status == 404 and not self._use_endpoints and self._settings.kubernetes.api == "auto":
                raise _FallBack() from None
            raise
        objects = _items(listing)
        version = _resource_version(listing)
        current: dict[str, dict[str, Any]] = {_key(o): o for o in objects}
        parsed = _ParsedObjects(resource)
        last = parsed.view(current)
        yield last
        backoff.reset()
        while True:
            started = time.monotonic()
            received = 0
            try:
                async for view, seen in self._watch(client, resource, current, version, parsed):
                    version = seen
                    received += 1
                    if view is not None and (view.endpoints != last.endpoints or view.skipped != last.skipped):
                        last = view
                        yield view
                    backoff.reset()
            except _Expired:
                yield Restart("expired")
                return
            except ApiError as exc:
                if exc.reason not in ("closed", "timeout") or not exc.mid_stream:
                    # Not even opened (a connect timeout through a partition, say): a failure, so the
                    # list is marked stale and the next try relists after the backoff.
                    raise
                # The stream died but our resourceVersion is still good: resume, don't relist.
                yield Restart(exc.reason)
            else:
                yield Restart("server-closed")  # the server's timeoutSeconds ran out: routine
            if received == 0 and time.monotonic() - started < VERY_SHORT_WATCH:
                await asyncio.sleep(backoff.next_delay())

    async def _watch(
        self,
        client: ApiClient,
        resource: Resource,
        current: dict[str, dict[str, Any]],
        version: str,
        parsed: _ParsedObjects,
    ) -> AsyncIterator[tuple[View | None, str]]:
        """One watch stream from ``version``, applying events to ``current``; bookmarks yield no view."""
        settings = self._settings
        # Jitter spreads the reconnects of many sidecars that started together.
        longest = settings.kubernetes.watch_timeout
        server_timeout = int(self._rng.uniform(longest / 2, longest)) or 1
        params = {
            **resource.selector,
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(server_timeout),
        }
        try:
            async for event in client.watch(resource.path, params, server_timeout=server_timeout):
                version = _apply(event, current, version)
                yield (None if event.get("type") == "BOOKMARK" else parsed.view(current)), version
        except ApiError as exc:
            if exc.status == 410:
                raise _Expired() from None
            raise


def _apply(event: Mapping[str, Any], current: dict[str, dict[str, Any]], version: str) -> str:
    """Apply one watch event to ``current``; return the resourceVersion to resume from."""
    kind = event.get("type")
    obj = event.get("object")
    if not isinstance(obj, dict):
        raise ApiError("bad_response", f"watch event {kind!r} without an object")
    if kind == "ERROR":
        # The API server reports an expired resourceVersion in-stream as a Status with code 410.
        code = obj.get("code")
        if code == 410:
            raise _Expired()
        raise ApiError("server_error", f"watch error {code}: {obj.get('message', '')}", status=code)
    name = _key(obj)
    if kind in ("ADDED", "MODIFIED"):
        current[name] = obj
    elif kind == "DELETED":
        current.pop(name, None)
    elif kind != "BOOKMARK":
        raise ApiError("bad_response", f"unknown watch event type {kind!r}")
    return _resource_version(obj) or version


class _ParsedObjects:
    """Parsed records per object, reused while the object's resourceVersion is unchanged.

    A watch event changes one slice; re-parsing all of them (50 slices for 5,000 endpoints) cost
    most of the per-event time in the scale benchmark.
    """

    def __init__(self, resource: Resource) -> None:
        self._resource = resource
        self._cache: dict[str, tuple[str, Parsed]] = {}

    def view(self, current: Mapping[str, dict[str, Any]]) -> View:
        found: list[Endpoint] = []
        skipped = 0
        for name in sorted(current):
            obj = current[name]
            version = _resource_version(obj)
            cached = self._cache.get(name)
            if cached is None or cached[0] != version or not version:
                cached = (version, self._resource.parse([obj]))
                self._cache[name] = cached
            found.extend(cached[1].endpoints)
            skipped += cached[1].skipped
        for gone in self._cache.keys() - current.keys():
            del self._cache[gone]
        return View(tuple(sorted(found, key=lambda e: (e.address, e.pod or ""))), skipped)


def _items(listing: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = listing.get("items") or []
    if not isinstance(items, list):
        raise ApiError("bad_response", "list response without an items array")
    return [item for item in items if isinstance(item, dict)]


def _key(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


def _resource_version(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return version if isinstance(version, str) else ""


async def _refresh(client: ApiClient) -> None:
    try:
        await client.access.credentials.header(force=True)
    except AccessError as exc:
        log.error("%s", exc)

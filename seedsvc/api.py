"""The Python API: the same discovery and selection as the sidecar, without HTTP.

    import seedsvc.api as seeds

    settings = seeds.settings_from_env(service="cassandra", namespace="db")
    print(seeds.current_seeds_sync(settings).seeds)        # one shot, from a script

    async for update in seeds.watch_seeds(settings):       # every change, from async code
        print(update.seeds, update.stale)

Settings come from :func:`settings_from_env`, which reads the same environment variables as the sidecar
(overrides are keyed by the flag in snake case: ``count="5"``, ``dns_nameserver="10.0.0.10"``). The
answer is a :class:`~seedsvc.seedlist.SeedList`, the same value the sidecar serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from seedsvc.discovery import Discovery
from seedsvc.federated_discovery import NullFederationObserver, build_federation
from seedsvc.seedlist import SeedList
from seedsvc.selection import select
from seedsvc.settings import Settings, load
from seedsvc.sources.events import Failure, Source, View
from seedsvc.sources.factory import build_source
from seedsvc.sources.peers import PeerClient, PeerEvent
from seedsvc.state import SeedState


class SeedsUnavailable(Exception):
    """No non-empty seed list could be had; the message says why (the last error or the rule)."""


def settings_from_env(**overrides: Any) -> Settings:
    """Settings from the process environment, with keyword overrides by field name.

    Overrides are given as text, exactly as on the command line (``count="5"``), so they go through
    the same validation; a bad one raises :class:`~seedsvc.settings.ConfigError`.
    """
    flags = {name: None if value is None else str(value) for name, value in overrides.items()}
    return load(flags, os.environ)


async def current_seeds(settings: Settings | None = None, *, timeout: float = 10.0) -> SeedList:
    """Discover once and return the seeds this caller would be served.

    Waits up to ``timeout`` seconds for the source's first complete view; raises
    :class:`SeedsUnavailable` with the last error, or with the selection rule that left the list empty.
    With a datacenter configured, each peer DC is asked once at the same time (within the same
    ``timeout``) and the answer is composed as the sidecar's ``/seeds`` is: peers' seeds included, an
    unreachable peer reported in ``datacenters`` as stale.
    """
    settings = settings or settings_from_env()
    if settings.federation.datacenter is not None:
        return await _federated_once(settings, timeout)
    source = build_source(settings)
    view, last_failure = await _first_view(source, timeout)
    selection = select(
        view.endpoints if view else None,
        policy=settings.selection,
        identity=settings.identity,
        now=time.monotonic(),
    )
    if selection.served:
        # The same state the sidecar keeps, so the answer is the very value it would serve.
        state = SeedState()
        state.publish(selection, source=source.name if view else "static", now=datetime.now(UTC))
        return state.snapshot
    raise SeedsUnavailable(_why(selection.reason, source.name, view, last_failure, timeout))


async def _federated_once(settings: Settings, timeout: float) -> SeedList:
    served = SeedState()
    federation = build_federation(settings, served=served, scope=SeedState(), observer=NullFederationObserver())
    federation.state_file = None  # a one-shot caller is not the pod's sidecar: the state file is not its own
    local = federation.local
    # The local source and every peer at the same time: the whole answer stays within ``timeout``.
    peers = asyncio.gather(*(_first_peer_event(client, timeout) for client in federation.peers))
    try:
        view, last_failure = await _first_view(local.source, timeout)
    except BaseException:
        peers.cancel()
        raise
    peer_events = await peers
    selection = select(view.endpoints if view else None, policy=local.policy, identity=settings.identity,
                       now=time.monotonic())
    if view is None:
        # As the sidecar: peers' seeds are never served to a caller whose own DC is unknown.
        if selection.served:
            served.publish(selection, source="static", now=datetime.now(UTC))
            return served.snapshot
        raise SeedsUnavailable(_why(selection.reason, local.source.name, view, last_failure, timeout))
    await federation.compose_once(selection, source=local.source.name, peers=peer_events)
    found = served.snapshot
    if found.seeds:
        return found
    raise SeedsUnavailable(found.reason)


async def _first_view(source: Source, timeout: float) -> tuple[View | None, Failure | None]:
    """The source's first complete view within ``timeout`` (None if none), and its last failure."""
    last_failure: Failure | None = None
    updates = source.updates()
    try:
        async with asyncio.timeout(timeout):
            async for event in updates:
                if isinstance(event, View):
                    return event, last_failure
                if isinstance(event, Failure):
                    last_failure = event
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await updates.aclose()  # type: ignore[attr-defined]
    return None, last_failure


async def _first_peer_event(client: PeerClient, timeout: float) -> PeerEvent:
    """One bounded fetch of a peer: its first answer or failure (the client's own timeouts apply too)."""
    updates = client.updates()
    try:
        async with asyncio.timeout(timeout):
            async for event in updates:
                return event
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await updates.aclose()  # type: ignore[attr-defined]
    return Failure("timeout", f"{client.config.seeds_url}: no answer within {timeout:g}s")


def _why(reason: str, source: str, view: View | None, last_failure: Failure | None, timeout: float) -> str:
    if view is not None:
        return reason
    why = f"no answer from the {source} source within {timeout:g}s"
    if last_failure is not None:
        why += f"; last error ({last_failure.reason}): {last_failure.detail}"
    return why


def current_seeds_sync(settings: Settings | None = None, *, timeout: float = 10.0) -> SeedList:
    """:func:`current_seeds` for scripts without an event loop."""
    return asyncio.run(current_seeds(settings, timeout=timeout))


async def watch_seeds(settings: Settings | None = None) -> AsyncGenerator[SeedList, None]:
    """Yield the served list now (once there is one) and again each time it changes.

    Discovery runs in a background task for as long as the iterator is used; closing the iterator
    (or leaving the ``async for``) stops it.
    """
    settings = settings or settings_from_env()
    state = SeedState()
    run: Callable[[], Coroutine[Any, Any, None]]
    if settings.federation.datacenter is not None:
        # Several DCs: the same composition as the sidecar's /seeds, peers' seeds included.
        run = build_federation(settings, served=state, scope=SeedState(), observer=NullFederationObserver()).run
    else:
        run = Discovery(source=build_source(settings), policy=settings.selection, identity=settings.identity,
                        state=state).run
    task = asyncio.create_task(run(), name="seedsvc-discovery")
    try:
        async for snapshot in state.changes():
            if task.done():
                task.result()  # surface a crash rather than waiting forever
            yield snapshot
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


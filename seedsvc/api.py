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
from seedsvc.sources.events import Failure, View
from seedsvc.sources.factory import build_source
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
    """
    settings = settings or settings_from_env()
    source = build_source(settings)
    view: View | None = None
    last_failure: Failure | None = None
    updates = source.updates()
    try:
        async with asyncio.timeout(timeout):
            async for event in updates:
                if isinstance(event, View):
                    view = event
                    break
                if isinstance(event, Failure):
                    last_failure = event
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await updates.aclose()  # type: ignore[attr-defined]
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
    why = selection.reason
    if view is None:
        why = f"no answer from the {source.name} source within {timeout:g}s"
        if last_failure is not None:
            why += f"; last error ({last_failure.reason}): {last_failure.detail}"
    raise SeedsUnavailable(why)


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


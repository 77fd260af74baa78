"""Run a real Discovery loop inside a test's event loop, and wait on the state it keeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from seedsvc.discovery import Discovery
from seedsvc.seedlist import SeedList
from seedsvc.state import SeedState


@contextlib.asynccontextmanager
async def running(discovery: Discovery) -> AsyncIterator[None]:
    """``discovery.run()`` as a task for the ``async with`` body; cancelled and awaited afterwards."""
    task = asyncio.create_task(discovery.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_state(
    state: SeedState, predicate: Callable[[SeedList], bool], what: str, timeout: float = 60.0
) -> None:
    """Wait until ``predicate(state.snapshot)`` holds; fail with the last snapshot after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate(state.snapshot):
                # Short waits: staleness and errors change the snapshot without a new generation.
                await state.wait_past(state.snapshot.generation, timeout=0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {state.snapshot}") from None

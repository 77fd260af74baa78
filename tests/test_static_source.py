"""The static source: one view of CASSANDRA_SEEDS, then nothing, without spinning."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from seedsvc.records import Endpoint, InvalidAddress
from seedsvc.sources.events import View
from seedsvc.sources.static import StaticSource


async def test_one_view_of_the_normalised_addresses_in_order() -> None:
    source = StaticSource(("10.0.0.2", "[FD00:0::1]", "10.0.0.1", "10.0.0.2"))
    assert source.name == "static"
    events = source.updates()
    try:
        async with asyncio.timeout(1):
            view = await anext(events)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    assert view == View((Endpoint("10.0.0.2"), Endpoint("fd00::1"), Endpoint("10.0.0.1")))


async def test_then_waits_without_busy_looping_until_cancelled() -> None:
    events = StaticSource(("10.0.0.1",)).updates()
    await anext(events)
    waiter = asyncio.ensure_future(anext(events))
    cpu_before = time.process_time()
    done, _ = await asyncio.wait({waiter}, timeout=0.3)
    cpu_used = time.process_time() - cpu_before
    assert not done  # nothing more is ever yielded
    assert cpu_used < 0.1, f"used {cpu_used:.3f}s of CPU while idle"
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert waiter.cancelled()
    await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("seeds", [(), ("cassandra-0",), ("10.0.0.1", "10.0.0.300")])
def test_bad_seed_lists_are_refused_up_front(seeds: tuple[str, ...]) -> None:
    with pytest.raises((ValueError, InvalidAddress)):
        StaticSource(seeds)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"])
def test_addresses_no_node_can_have_are_refused(address: str) -> None:
    # Settings built in code skip the CASSANDRA_SEEDS parser; the source refuses these by itself.
    with pytest.raises(InvalidAddress, match="not a unicast address"):
        StaticSource(("10.0.0.1", address))

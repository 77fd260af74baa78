"""The static source: one view of CASSANDRA_SEEDS, then nothing, without spinning."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from seedsvc.records import Endpoint, InvalidAddress
from seedsvc.sources.events import SourceEvent, View
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


def innermost_awaitable(events: AsyncIterator[SourceEvent]) -> object:
    """What a suspended async generator is waiting on, at the bottom of its chain of awaits."""
    awaited = events.ag_await  # type: ignore[attr-defined]
    while (inner := getattr(awaited, "cr_await", None)) is not None:
        awaited = inner
    return awaited


async def test_then_waits_without_busy_looping_until_cancelled() -> None:
    # "Not busy looping" without measuring CPU (which says little on a loaded machine, where a busy
    # loop gets only a slice of a core): the generator must sit on one and the same pending future
    # for the whole window, where a poll or a sleep(0) loop would await a new one each turn.
    events = StaticSource(("10.0.0.1",)).updates()
    await anext(events)
    waiter = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    parked_on = innermost_awaitable(events)
    assert parked_on is not None
    done, _ = await asyncio.wait({waiter}, timeout=0.3)
    assert not done  # nothing more is ever yielded
    assert innermost_awaitable(events) is parked_on
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert waiter.cancelled()
    await events.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("seeds", "error", "message"),
    [
        ((), ValueError, "the static source needs at least one address in CASSANDRA_SEEDS"),
        (("cassandra-0",), InvalidAddress, "not an IP address: 'cassandra-0'"),
        (("10.0.0.1", "10.0.0.300"), InvalidAddress, "not an IP address: '10.0.0.300'"),
        (("fe80::1%eth0",), InvalidAddress, "not an IP address (zone index): 'fe80::1%eth0'"),
    ],
)
def test_bad_seed_lists_are_refused_up_front(seeds: tuple[str, ...], error: type[Exception], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        StaticSource(seeds)
    assert type(caught.value) is error
    assert str(caught.value) == message


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"])
def test_addresses_no_node_can_have_are_refused(address: str) -> None:
    # Settings built in code skip the CASSANDRA_SEEDS parser; the source refuses these by itself.
    with pytest.raises(InvalidAddress, match="not a unicast address"):
        StaticSource(("10.0.0.1", address))

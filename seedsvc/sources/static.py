"""Static source: the addresses of ``CASSANDRA_SEEDS``, once, with no I/O at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from seedsvc.records import Endpoint, seed_address
from seedsvc.sources.events import SourceEvent, View


class StaticSource:
    """Yields one :class:`View` of the configured addresses, then waits until cancelled.

    The records carry no pod name, so selection orders them by address; ``CASSANDRA_SEEDS`` is usually
    short enough that the count takes all of them.
    """

    def __init__(self, seeds: tuple[str, ...]) -> None:
        """Raises ValueError for an empty list or an entry that is not a unicast IP literal."""
        if not seeds:
            raise ValueError("the static source needs at least one address in CASSANDRA_SEEDS")
        # Order kept, duplicates dropped; normalised like every other source's addresses.
        addresses = dict.fromkeys(seed_address(seed) for seed in seeds)
        self._endpoints = tuple(Endpoint(address=address) for address in addresses)

    @property
    def name(self) -> str:
        return "static"

    async def updates(self) -> AsyncIterator[SourceEvent]:
        yield View(self._endpoints)
        # Nothing will ever change: park on an Event nobody sets (no polling) until cancelled.
        await asyncio.Event().wait()

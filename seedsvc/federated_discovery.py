"""Several datacenters: the imperative shell around :mod:`seedsvc.federation` (docs/design.md section 8).

One task each for the local :class:`~seedsvc.discovery.Discovery` (which publishes into a
:class:`LocalStage` instead of the served state), for every peer DC's client, and for composing. The
composer wakes whenever the local outcome or a peer changes, or a deadline (flap grace or the restart
fallback of the DC scope, a stale peer's expiry) comes due, and publishes two states:

- ``served``: what ``GET /seeds`` answers the caller (local list + peers' seeds),
- ``scope``: what ``GET /seeds?scope=datacenter`` answers the peers (this DC's seed set).

Peers never delay the local answer: their tasks only update a dict and wake the composer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from seedsvc.discovery import Discovery, NullObserver, Observer
from seedsvc.federation import (
    NO_BOOTSTRAP_ORDINAL,
    DatacenterStatus,
    FederationMemory,
    FederationRules,
    PeerSeeds,
    compose,
    datacenter_selection,
)
from seedsvc.records import Identity
from seedsvc.selection import Memory, Mode, Policy, Selection
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, Restart, Source, View
from seedsvc.sources.factory import build_source
from seedsvc.sources.peers import PeerAnswer, PeerClient, PeerConfig, PeerEvent
from seedsvc.state import SeedState, StateFile

log = logging.getLogger("seedsvc.federation")


@dataclass(slots=True)
class LocalStage(SeedState):
    """Where the local Discovery publishes: the own DC's outcome for this caller, before peers are
    added. Every change wakes the composer through ``on_change``."""

    on_change: Callable[[], None] = lambda: None
    selection: Selection | None = None
    fallback: Selection | None = None

    # Explicit base calls: zero-argument super() does not work in slotted dataclasses before 3.14.
    def publish(self, selection: Selection, *, source: str, now: datetime, datacenter: str | None = None,
                datacenters: tuple[DatacenterStatus, ...] = ()) -> bool:
        changed = SeedState.publish(self, selection, source=source, now=now)
        self.selection = selection
        self.on_change()
        return changed

    def publish_fallback(self, selection: Selection, *, source: str) -> bool:
        self.fallback = selection
        self.on_change()
        return SeedState.publish_fallback(self, selection, source=source)

    def mark_failing(self, *, reason: str, detail: str) -> None:
        SeedState.mark_failing(self, reason=reason, detail=detail)
        self.on_change()


class FederationObserver(Protocol):
    """Metrics hooks of the composer; cheap and never raising."""

    def peer_failure(self, datacenter: str, failure: Failure) -> None: ...
    def selected(self, selection: Selection, *, changed: bool) -> None: ...


class CombinedObserver(Observer, FederationObserver, Protocol):
    """The sidecar's metrics: observer of the local source and of the composer."""


class NullFederationObserver(NullObserver):
    """For callers without metrics (the Python API)."""

    def peer_failure(self, datacenter: str, failure: Failure) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LocalOnly:
    """The local Discovery's observer: source events go to metrics as in one DC, but its selections
    are not what is served, so ``selected`` is left to the composer."""

    inner: Observer

    def view(self, source: str, view: View) -> None:
        self.inner.view(source, view)

    def failure(self, source: str, failure: Failure) -> None:
        self.inner.failure(source, failure)

    def restart(self, source: str, restart: Restart) -> None:
        self.inner.restart(source, restart)

    def selected(self, selection: Selection, *, changed: bool) -> None:
        pass


@dataclass(slots=True)
class FederatedDiscovery:
    """Runs the local discovery and every peer client forever; keeps ``served`` and ``scope`` current."""

    datacenter: str
    local: Discovery
    stage: LocalStage
    peers: tuple[PeerClient, ...]
    served: SeedState
    scope: SeedState
    identity: Identity
    scope_policy: Policy
    rules: FederationRules
    observer: FederationObserver
    state_file: StateFile | None = None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    _peer_state: dict[str, PeerSeeds] = field(default_factory=dict)
    _scope_memory: Memory = field(default_factory=Memory)
    _memory: FederationMemory = field(default_factory=FederationMemory)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Until cancelled; if any part dies the others are cancelled and the error propagates."""
        self.stage.on_change = self._wake.set
        for client in self.peers:
            self._peer_state[client.name] = PeerSeeds(client.name, reason="no answer yet")
        async with asyncio.TaskGroup() as group:
            group.create_task(self.local.run(), name="local discovery")
            for client in self.peers:
                group.create_task(self._follow(client), name=f"peer {client.name}")
            group.create_task(self._compose_forever(), name="composer")

    async def _follow(self, client: PeerClient) -> None:
        name = client.name
        updates = client.updates()
        try:
            async for event in updates:
                self._record(name, event)
                self._wake.set()
        finally:
            with contextlib.suppress(Exception):
                await updates.aclose()  # type: ignore[attr-defined]

    def _record(self, name: str, event: PeerEvent) -> None:
        old = self._peer_state.get(name, PeerSeeds(name, reason="no answer yet"))
        if isinstance(event, PeerAnswer):
            if old.stale or event.seeds != old.seeds:
                log.info("peer datacenter %s: seeds %s", name, ",".join(event.seeds))
            self._peer_state[name] = PeerSeeds(name, event.seeds, fetched_at=self.clock(), updated_at=self.wall())
        else:
            self.observer.peer_failure(name, event)
            if not old.stale:
                log.warning("peer datacenter %s failing (%s): %s; keeping its last seeds %s", name,
                            event.reason, event.detail, ",".join(old.seeds) or "(none known)")
            self._peer_state[name] = replace(old, stale=True, reason=f"{event.reason}: {event.detail}")

    async def compose_once(self, local: Selection, *, source: str, peers: Sequence[PeerEvent]) -> None:
        """One composition for one-shot callers (``seedsvc seeds``, ``current_seeds()``): ``local`` is
        the selection of the local source's first view, ``peers`` each peer's first event, in the
        order of ``self.peers``. Publishes ``served`` and ``scope`` exactly as the running sidecar would
        with the same inputs."""
        self.stage.publish(local, source=source, now=self.wall())
        for client, event in zip(self.peers, peers, strict=True):
            self._record(client.name, event)
        await self._compose()

    async def _compose_forever(self) -> None:
        while True:
            deadline = await self._compose()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    async def _compose(self) -> float | None:
        """Publish both states from what is known now; the next time composing could differ."""
        local = self.stage.selection
        if local is None:
            # No local view yet: serve only what one DC would (static seeds), never peers' seeds to a
            # pod whose own DC is unknown; a list restored from the state file stays until then.
            if self.stage.fallback is not None:
                self.served.publish_fallback(self.stage.fallback, source="static")
            return None
        now, wall = self.clock(), self.wall()
        local_snapshot = self.stage.snapshot
        endpoints = tuple(candidate.endpoint for candidate in local.candidates)
        own = datacenter_selection(endpoints, policy=self.scope_policy, now=now, memory=self._scope_memory)
        self._scope_memory = own.memory
        peers = list(self._peer_state.values())
        composition = compose(local, identity=self.identity, peers=peers, rules=self.rules, now=now,
                              memory=self._memory)
        self._memory = composition.memory
        statuses = (
            DatacenterStatus(self.datacenter, own.served, local_snapshot.stale, local_snapshot.last_success,
                             local_snapshot.last_error or (own.reason or None), own=True),
            *(DatacenterStatus(p.name, p.usable_seeds(now, self.rules.expiry), p.stale, p.updated_at, p.reason)
              for p in sorted(peers, key=lambda p: p.name)),
        )
        source = local_snapshot.source
        self.scope.publish(own, source=source, now=wall, datacenter=self.datacenter, datacenters=statuses)
        changed = self.served.publish(composition.selection, source=source, now=wall, datacenter=self.datacenter,
                                      datacenters=statuses)
        if local_snapshot.stale and local_snapshot.last_error is not None:
            # The local source is failing: both lists are its last known one, flagged as in one DC.
            failing = {"reason": local_snapshot.last_error_reason or "unknown", "detail": local_snapshot.last_error}
            self.scope.mark_failing(**failing)
            self.served.mark_failing(**failing)
        self.observer.selected(composition.selection, changed=changed)
        if changed:
            # The local Discovery logs its own list; this line is what /seeds serves, peers included.
            log.info("served now %s (%s, with peer datacenters)", ",".join(composition.selection.served) or "-",
                     composition.selection.mode)
            if composition.selection.mode is Mode.BOOTSTRAP:
                log.warning("seeding itself: %s", composition.selection.reason)
            await self._persist()
        return _earliest(own.next_deadline, composition.next_deadline)

    async def _persist(self) -> None:
        if self.state_file is None or not self.served.snapshot.servable:
            return
        try:
            await asyncio.to_thread(self.state_file.save, self.served.snapshot)
        except OSError as exc:
            log.error("cannot write state file %s: %s", self.state_file.path, exc)


def _earliest(a: float | None, b: float | None) -> float | None:
    present = [v for v in (a, b) if v is not None]
    return min(present) if present else None


def build_federation(
    settings: Settings,
    *,
    served: SeedState,
    scope: SeedState,
    observer: CombinedObserver,
    source: Source | None = None,
) -> FederatedDiscovery:
    """The federated discovery ``settings`` describe (``settings.federation.datacenter`` set);
    ``source`` replaces the configured local source (tests feed their own views through it).

    ``served`` may already hold a list restored from the state file: that is what marks a pod as one
    that has run before, allowed the whole-DC restart fallback even outside the bootstrap DC, and, as
    its DC's bootstrap-ordinal pod, regional recovery (:func:`seedsvc.federation.compose`).
    """
    group = settings.federation
    if group.datacenter is None:
        raise ValueError("build_federation needs settings.federation.datacenter")
    policy = settings.selection
    if not group.bootstrap_here:
        policy = replace(policy, bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    local = Discovery(source=source or build_source(settings), policy=policy, identity=settings.identity,
                      state=(stage := LocalStage()), observer=LocalOnly(observer))
    # Peers get the same connect and request bounds as the API server, and the sources' backoff cap.
    timeouts = settings.kubernetes
    clients = tuple(
        PeerClient(PeerConfig(name, url, ca_file=group.peer_ca_file, connect_timeout=timeouts.connect_timeout,
                              request_timeout=timeouts.request_timeout, backoff_max=settings.discovery.backoff_max))
        for name, url in group.peers
    )
    rules = FederationRules(peer_count=group.peer_count, may_seed_itself=group.bootstrap_here,
                            may_restart_fallback=group.bootstrap_here or served.snapshot.servable,
                            expiry=group.peer_expiry, has_run_before=served.snapshot.servable,
                            bootstrap_ordinal=settings.selection.bootstrap_ordinal,
                            recovery_after=settings.selection.restart_fallback_after)
    return FederatedDiscovery(
        datacenter=group.datacenter, local=local, stage=stage, peers=clients, served=served, scope=scope,
        identity=settings.identity, scope_policy=settings.selection, rules=rules, observer=observer,
        state_file=StateFile(settings.state.file) if settings.state.file else None,
    )

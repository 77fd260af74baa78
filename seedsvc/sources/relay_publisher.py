"""The relay's side of relay mode: what ``GET /seeds?scope=relay`` answers, kept current.

A relay is ``seedsvc serve`` without a pod identity: its own select() is identity-less, so the
selection it makes is the same for every caller, and :func:`~seedsvc.sources.relay_digest.digest`
turns it into the few records each sidecar needs. :class:`RelayPublisher` sits between the discovery
loop and the metrics: every selection is also published as a digest into a :class:`RelayState`,
every source failure marks it stale (sidecars then fail over, and never bootstrap on it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from seedsvc.federated_discovery import CombinedObserver
from seedsvc.seedlist import SeedList
from seedsvc.selection import Candidate, Selection
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, Restart, View
from seedsvc.sources.relay_digest import digest
from seedsvc.state import SeedState


def _first_generation() -> int:
    # Milliseconds since the epoch: a restarted relay numbers past its predecessor, so a sidecar
    # long-polling with an old generation is answered at once instead of waiting for a coincidence.
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class RelayState(SeedState):
    """The digest being served; the generation moves whenever any record of it changes (a readiness
    flip of a record changes the answer even when the addresses stay the same)."""

    snapshot: SeedList = field(default_factory=lambda: SeedList(generation=_first_generation()))

    def publish_digest(self, selection: Selection, *, count: int, source: str, now: datetime) -> bool:
        records = digest(selection, count)
        old = self.snapshot
        candidates = tuple(Candidate(e, e.address in selection.seeds) for e in records)
        changed = candidates != old.candidates
        reason = "" if records else "no endpoint in this datacenter yet"
        self.snapshot = SeedList(
            seeds=tuple(e.address for e in records),
            generation=old.generation + 1 if changed else old.generation,
            updated_at=now if changed or old.updated_at is None else old.updated_at,
            source=source, mode=selection.mode, reason=reason, stale=False, candidates=candidates,
            last_success=now,
        )
        if changed or old.stale:
            self._notify()
        return changed


@dataclass(frozen=True, slots=True)
class RelayPublisher:
    """The discovery loop's observer on a relay: metrics as usual, and the digest for sidecars."""

    inner: CombinedObserver
    state: RelayState
    count: int

    def view(self, source: str, view: View) -> None:
        self.inner.view(source, view)

    def failure(self, source: str, failure: Failure) -> None:
        self.inner.failure(source, failure)
        self.state.mark_failing(reason=failure.reason, detail=failure.detail)

    def restart(self, source: str, restart: Restart) -> None:
        self.inner.restart(source, restart)

    def selected(self, selection: Selection, *, changed: bool) -> None:
        self.inner.selected(selection, changed=changed)
        self.state.publish_digest(selection, count=self.count, source="relay", now=datetime.now(UTC))

    def peer_failure(self, datacenter: str, failure: Failure) -> None:
        self.inner.peer_failure(datacenter, failure)


def is_relay(settings: Settings) -> bool:
    """A ``seedsvc serve`` that watches for others: no pod identity, and not itself fed by a relay."""
    identity = settings.identity
    return identity.pod_name is None and identity.pod_ip is None and settings.discovery.source != "relay"

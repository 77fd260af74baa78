"""Several datacenters: composing the own DC's seeds with those learnt from peer DCs (docs/design.md s. 8).

Pure, like :mod:`seedsvc.selection`: no clock, no I/O, no logging. Time enters as ``now`` (monotonic
seconds); what is known of each peer DC comes in as :class:`PeerSeeds`, already validated by the peer
client (:mod:`seedsvc.sources.peers`).

Two views come out of here:

- :func:`datacenter_selection`, this DC's own seed set (rules 1-5 and 8 on local candidates, no
  self-exclusion, no peer seeds). Peers long-poll it as ``GET /seeds?scope=datacenter``.
- :func:`compose`, what one caller is served: its local list (section 2, self-exclusion included)
  followed by each peer's seeds, peers in name order, at most ``peer_count`` each, duplicates removed,
  never the caller itself unless it is the bootstrap pod of the bootstrap DC and no peer seed is known,
  or the regional-recovery rule below applies.

Regional recovery: the bootstrap-ordinal pod of any DC with peers whose sidecar restored a state file
(``FederationRules.has_run_before``) is served itself first once it has had no eligible local peer and
no fresh peer seed for ``rules.recovery_after`` seconds. How long that has lasted is carried from one
call to the next in :class:`FederationMemory`, as select() carries its own ``Memory``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Memory, Mode, Policy, Selection, select

NO_BOOTSTRAP_ORDINAL = -1
"""The ``Policy.bootstrap_ordinal`` of a DC that may not seed itself: no pod has a negative ordinal,
so select() treats every pod, ordinal 0 included, as one that must wait for a peer."""


@dataclass(frozen=True, slots=True)
class PeerSeeds:
    """What one sidecar knows of one peer DC."""

    name: str
    seeds: tuple[str, ...] = ()
    """The peer's last good answer, in the peer's order; () before the first."""
    fetched_at: float | None = None
    """Monotonic time of the last good answer (the start of expiry); None before the first."""
    updated_at: datetime | None = None
    """Wall time of the last good answer, for JSON."""
    stale: bool = False
    """The peer's last attempt failed: ``seeds`` is the last known list."""
    reason: str | None = None
    """Why the peer is failing (or has never answered): a one-line detail for JSON and /readyz."""

    def usable_seeds(self, now: float, expiry: float) -> tuple[str, ...]:
        """The seeds to compose with: the last good answer, dropped once stale for ``expiry`` seconds."""
        if self.stale and self.fetched_at is not None and now - self.fetched_at >= expiry:
            return ()
        return self.seeds

    def expires_at(self, expiry: float) -> float | None:
        """When a stale peer's seeds will be dropped; None when nothing is pending."""
        if not self.stale or self.fetched_at is None or not self.seeds:
            return None
        return self.fetched_at + expiry


@dataclass(frozen=True, slots=True)
class DatacenterStatus:
    """One entry of the JSON ``datacenters`` object (the own DC included)."""

    name: str
    seeds: tuple[str, ...]
    stale: bool
    updated_at: datetime | None
    reason: str | None
    own: bool = False


@dataclass(frozen=True, slots=True)
class FederationRules:
    """The settings composition depends on (docs/design.md section 8)."""

    peer_count: int = 2
    """Seeds taken from each peer DC: two keep a node able to reach a DC while one of its seeds is down,
    without making a remote seed of every node."""
    may_seed_itself: bool = False
    """True in the bootstrap DC only: its bootstrap pod may seed itself when no peer seed is known."""
    may_restart_fallback: bool = True
    """Whether rule 8's unready local peers may be served. False for a pod of a non-bootstrap DC that
    has never been served a list (no state file): two new pods that only see each other would form an
    island, which is exactly what a DC added to a running cluster must not do."""
    expiry: float = 86400.0
    """Seconds a failing peer's last seeds stay in the list."""
    has_run_before: bool = False
    """The caller's sidecar restored a state file: it has been served a list before, and (the overlay
    keeps the file on the data volume) its node still has the data and saved ring state of that run."""
    bootstrap_ordinal: int = 0
    """The DC's bootstrap ordinal (the one-DC policy's, even where the DC may not seed itself): the
    only pod regional recovery may serve itself, so a recovering DC re-forms around one node."""
    recovery_after: float = 120.0
    """Seconds without an eligible local peer and without a fresh peer seed before regional recovery
    (the restart-fallback time: long enough for a peer DC's seedsvc to answer after a blip)."""

    def __post_init__(self) -> None:
        if self.peer_count < 1:
            raise ValueError(f"peer_count must be at least 1, got {self.peer_count}")
        if self.expiry < 0 or self.recovery_after < 0:
            raise ValueError("durations must not be negative")


@dataclass(frozen=True, slots=True)
class FederationMemory:
    """What compose() carries from one call to the next. Start with ``FederationMemory()``."""

    alone_since: float | None = None
    """Since when the caller has had no eligible local peer and no fresh peer seed; None while it has."""


@dataclass(frozen=True, slots=True)
class Composition:
    """What one caller is served, and what every peer contributed."""

    selection: Selection
    peer_parts: tuple[tuple[str, tuple[str, ...]], ...]
    """(peer name, the addresses it contributed to ``selection.served``), in name order."""
    next_deadline: float | None
    """When a stale peer's seeds expire or regional recovery comes due, so composing again with the
    same inputs would differ."""
    memory: FederationMemory = FederationMemory()


def datacenter_selection(
    endpoints: Iterable[Endpoint], *, policy: Policy, now: float, memory: Memory | None = None
) -> Selection:
    """``scope=datacenter``: this DC's seed set, the same for every caller and every sidecar of the DC.

    Rules 1-5 and 8 of section 2 on the local candidates: no caller, so nothing is left out and no pod
    is the bootstrap pod; static seeds are not this DC's seeds and are never handed to peers.
    """
    selection = select(endpoints, policy=replace(policy, static_seeds=()), identity=Identity(), now=now,
                       memory=memory)
    if not selection.seeds:
        reason = selection.reason or "no eligible endpoint in this datacenter"
        return replace(selection, served=(), mode=Mode.UNAVAILABLE, reason=reason)
    return replace(selection, served=selection.seeds, reason="")


def compose(
    local: Selection,
    *,
    identity: Identity,
    peers: Sequence[PeerSeeds],
    rules: FederationRules,
    now: float,
    memory: FederationMemory | None = None,
) -> Composition:
    """The caller's list: local part, then peers' parts (name order, ``rules.peer_count`` each)."""
    if not peers and rules.may_seed_itself and rules.may_restart_fallback:
        # A DC without peers is its own bootstrap DC: exactly the single-DC answer, reasons included.
        return Composition(local, (), None)
    composition = _compose_lists(local, identity=identity, peers=peers, rules=rules, now=now)
    return _regional_recovery(composition, local, identity=identity, peers=peers, rules=rules, now=now,
                              memory=memory or FederationMemory())


def _compose_lists(
    local: Selection, *, identity: Identity, peers: Sequence[PeerSeeds], rules: FederationRules, now: float
) -> Composition:
    own = {identity.pod_ip} if identity.pod_ip else set()
    # The caller is never a remote seed of itself: its address in a peer's answer means overlapping
    # address ranges or a misconfigured peer, and serving it would let the caller skip bootstrap.
    local_part = _local_part(local, own, rules)
    taken: set[str] = set(local_part or ())
    parts: list[tuple[str, tuple[str, ...]]] = []
    for peer in sorted(peers, key=lambda p: p.name):
        part: list[str] = []
        for address in peer.usable_seeds(now, rules.expiry):
            if len(part) == rules.peer_count:
                break
            if address not in taken and address not in own:
                part.append(address)
                taken.add(address)
        parts.append((peer.name, tuple(part)))
    peer_seeds = tuple(a for _, part in parts for a in part)
    deadline = _earliest(p.expires_at(rules.expiry) for p in peers)

    if local_part is None:
        # Rule 7 and static seeds as in one DC: only while no peer seed is known.
        if peer_seeds:
            return Composition(_peers_only(local, peer_seeds, "a peer seed is known"), tuple(parts), deadline)
        return Composition(local, tuple(parts), deadline)
    if local_part:
        return Composition(replace(local, served=(*local_part, *peer_seeds)), tuple(parts), deadline)
    why = _why_no_local_part(local)
    if peer_seeds:
        return Composition(_peers_only(local, peer_seeds, why), tuple(parts), deadline)
    unavailable = replace(local, served=(), mode=Mode.UNAVAILABLE, reason=f"{why}; no peer datacenter seed known yet")
    return Composition(unavailable, tuple(parts), deadline)


def _regional_recovery(
    composition: Composition,
    local: Selection,
    *,
    identity: Identity,
    peers: Sequence[PeerSeeds],
    rules: FederationRules,
    now: float,
    memory: FederationMemory,
) -> Composition:
    """The bootstrap-ordinal pod of a DC that has run before seeds itself once it has been alone long.

    A whole DC restarted under ``OrderedReady`` while every peer DC is down starts pod 0 alone: no
    local peer, no peer seed reachable (peer seeds are not persisted), so Cassandra would exit "Unable
    to gossip with any peers" and pod 1 would never be created. A node with data and saved ring state
    that seeds itself does not found a new cluster: it reconnects to its saved peers when they return.
    Without the evidence (a new DC, or a pod that lost its data volume) the pod keeps waiting.
    """
    own = identity.pod_ip
    fresh_seed = any(a != own for p in peers if not p.stale for a in p.usable_seeds(now, rules.expiry))
    alone = local.memory.no_peer_since is not None and not fresh_seed
    since = (memory.alone_since if memory.alone_since is not None else now) if alone else None
    remembered = replace(composition, memory=FederationMemory(alone_since=since))
    if (since is None or not own or not rules.has_run_before or identity.ordinal != rules.bootstrap_ordinal
            or own in composition.selection.served):
        return remembered
    due = since + rules.recovery_after
    if now < due:
        return replace(remembered, next_deadline=_earliest((composition.next_deadline, due)))
    reason = (f"no eligible local peer and no fresh peer datacenter seed for {rules.recovery_after:g} s; "
              f"{identity.pod_name} has run before (state file restored) and seeds itself, then known seeds")
    served = (own, *composition.selection.served)
    return replace(remembered, selection=replace(local, served=served, mode=Mode.BOOTSTRAP, reason=reason))


def _local_part(local: Selection, own: set[str], rules: FederationRules) -> tuple[str, ...] | None:
    """The caller's local addresses; None when the local list may only be served without peer seeds."""
    if local.mode is Mode.BOOTSTRAP:
        return None if rules.may_seed_itself else ()
    if local.mode is Mode.STATIC:
        # CASSANDRA_SEEDS is served as configured (the caller included) only while nothing else is
        # known; next to peer seeds the caller would be its own seed and skip bootstrap.
        return None
    if local.mode is Mode.UNAVAILABLE:
        return ()
    if local.mode is Mode.RESTART_FALLBACK and not rules.may_restart_fallback:
        return ()
    return tuple(a for a in local.served if a not in own)


def _why_no_local_part(local: Selection) -> str:
    if local.mode is Mode.RESTART_FALLBACK:
        return ("no eligible local peer; unready local peers are not served to a pod that has never been "
                "served a list (they could form an island)")
    if local.mode is Mode.BOOTSTRAP:
        return "no eligible local peer; only the bootstrap datacenter's bootstrap pod may seed itself"
    return "no eligible local peer yet"


def _peers_only(local: Selection, peer_seeds: tuple[str, ...], why: str) -> Selection:
    reason = f"{why}; joining the cluster through peer datacenters' seeds"
    return replace(local, served=peer_seeds, mode=Mode.PEERS, reason=reason)


def _earliest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None

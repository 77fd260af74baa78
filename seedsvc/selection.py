"""Seed selection: a pure, deterministic function of records, policy, caller identity and time.

No clock, no logging, no randomness here. Time enters as ``now`` (any monotonic seconds) and what
select() must remember between calls (flap damping, the no-peer timer) goes in and out as
:class:`Memory`, so every rule can be tested exhaustively without sleeping.

The rules, in the order they apply (docs/design.md section 2 gives the reason for each):

1. Eligible: ready (or unset) and not terminating; duplicates across slices merged.
2. Order: StatefulSet ordinal ascending; records without an ordinal follow, by name, then address.
3. Topology: with zones, round-robin across sorted zone names, lowest ordinals first.
4. Count: at most ``policy.count`` seeds.
5. Flap damping: a seed that turns unready keeps its place for ``policy.flap_grace`` seconds.
6. Self-exclusion: the caller is left out of what it is served whenever another seed remains.
7. Bootstrap without islands: with no other eligible peer only the bootstrap pod serves itself.
8. Whole-cluster restart: after ``policy.restart_fallback_after`` seconds without an eligible peer,
   existing non-terminating peers become candidates even when not ready.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seedsvc import values
from seedsvc.options import setting
from seedsvc.records import Endpoint, Identity, merge_duplicates


@dataclass(frozen=True, slots=True)
class Policy:
    """The parameters of the selection rules (also the selection settings group); durations in seconds."""

    count: int = setting(3, flag="--count", env="CASSANDRA_SERVICE_NUM_SEEDS", parse=values.int_range(1, 100),
                         metavar="N", help="how many seeds to pick")
    """How many seeds; Cassandra recommends a few per datacenter, never every node."""
    static_seeds: tuple[str, ...] = setting(
        (), flag="--seeds", env="CASSANDRA_SEEDS", parse=values.seed_list, metavar="IPS",
        help="static seed addresses, comma-separated: the fallback before discovery succeeds")
    """CASSANDRA_SEEDS: served before discovery has ever succeeded, and to non-bootstrap pods that have
    no eligible peer."""
    flap_grace: float = setting(30.0, flag="--flap-grace", env="SEEDSVC_FLAP_GRACE", parse=values.seconds(0, 86400),
                                metavar="SECONDS", help="seconds an unready seed keeps its place")
    """How long an unready seed keeps its place: longer than a typical container restart, so one
    restarting seed does not rewrite every node's list twice."""
    restart_fallback_after: float = setting(
        120.0, flag="--restart-fallback-after", env="SEEDSVC_RESTART_FALLBACK_AFTER",
        parse=values.seconds(0, 86400), metavar="SECONDS",
        help="seconds without an eligible peer before unready peers become candidates")
    """How long without any eligible peer before unready peers become candidates: long enough for
    the bootstrap pod to start Cassandra in a normal rollout, short enough to recover a whole-cluster
    restart whose bootstrap pod cannot be scheduled."""
    bootstrap_ordinal: int = setting(
        0, flag="--bootstrap-ordinal", env="SEEDSVC_BOOTSTRAP_ORDINAL", parse=values.int_range(0, 1_000_000),
        metavar="N", help="the ordinal that may seed itself when it has no peer")
    """The one ordinal allowed to seed itself when it has no peer (StatefulSets start at 0)."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.flap_grace < 0 or self.restart_fallback_after < 0:
            raise ValueError("durations must not be negative")


@dataclass(frozen=True, slots=True)
class Memory:
    """What select() carries from one call to the next. Start with ``Memory()``."""

    seeds: tuple[str, ...] = ()
    unready_since: tuple[tuple[str, float], ...] = ()
    no_peer_since: float | None = None


class Mode(enum.StrEnum):
    """How the served list came about; shown in logs, JSON and metrics."""

    DISCOVERED = "discovered"
    BOOTSTRAP = "bootstrap"
    STATIC = "static"
    RESTART_FALLBACK = "restart-fallback"
    UNAVAILABLE = "unavailable"
    PEERS = "peers"
    """Several DCs only (seedsvc.federation): no local part, the peer DCs' seeds alone."""


@dataclass(frozen=True, slots=True)
class Candidate:
    endpoint: Endpoint
    seed: bool


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome for one caller. ``served`` is empty exactly when ``mode`` is UNAVAILABLE."""

    served: tuple[str, ...]
    seeds: tuple[str, ...]
    mode: Mode
    reason: str
    candidates: tuple[Candidate, ...]
    memory: Memory
    next_deadline: float | None = field(default=None)
    """When calling select() again with the same records could give a different answer."""


def rank_key(endpoint: Endpoint) -> tuple[bool, int, str, int, int]:
    """Rule 2: ordinal ascending, then name, then address (numerically, IPv4 before IPv6)."""
    ordinal = endpoint.ordinal
    return (ordinal is None, ordinal if ordinal is not None else 0, endpoint.pod or "", *_address_key(endpoint.address))


@functools.lru_cache(maxsize=1 << 16)
def _address_key(address: str) -> tuple[int, int]:
    # Parsing addresses dominated select() on large Services (benchmarks: ~25 us per endpoint);
    # the same few addresses come back on every event, so a bounded cache removes that cost.
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def spread(ranked: Sequence[Endpoint], count: int) -> tuple[Endpoint, ...]:
    """Rule 3 and 4: up to ``count`` records, round-robin across zones when any record has one.

    ``ranked`` must already be in rank order; the result keeps rank order.
    """
    if not any(e.zone for e in ranked):
        return tuple(ranked[:count])
    zones: dict[tuple[bool, str], list[Endpoint]] = {}
    for endpoint in ranked:
        # Records without a zone form one group that comes after every named zone.
        zones.setdefault((endpoint.zone is None, endpoint.zone or ""), []).append(endpoint)
    groups = [zones[key] for key in sorted(zones)]
    picked: list[Endpoint] = []
    depth = 0
    while len(picked) < min(count, len(ranked)):
        for group in groups:
            if depth < len(group) and len(picked) < count:
                picked.append(group[depth])
        depth += 1
    return tuple(sorted(picked, key=rank_key))


def select(
    endpoints: Iterable[Endpoint] | None,
    *,
    policy: Policy,
    identity: Identity,
    now: float,
    memory: Memory | None = None,
) -> Selection:
    """Choose the seeds the caller is served.

    ``endpoints`` is the complete current view of a source, or None when no source has ever
    produced one (then only the static seeds can be served).
    """
    memory = memory or Memory()
    if endpoints is None:
        return _static_or_unavailable(policy, identity, (), memory, "discovery has not succeeded yet")

    ranked = sorted(merge_duplicates(tuple(endpoints)), key=rank_key)
    damped, unready_since, damping_deadline = _damped_seeds(ranked, policy, memory, now)
    effective = [e for e in ranked if e.eligible or e.address in damped]
    has_peer = any(not identity.is_self(e) for e in effective)
    no_peer_since = None if has_peer else (memory.no_peer_since if memory.no_peer_since is not None else now)

    mode = Mode.DISCOVERED
    fallback_deadline: float | None = None
    # The bootstrap pod never needs the fallback: it may seed itself, and putting a running pod 0
    # into "restart" mode because a slow pod 1 is still unready would serve it that unready pod.
    is_bootstrap = identity.ordinal == policy.bootstrap_ordinal
    if not has_peer and no_peer_since is not None and not is_bootstrap:
        fallback_at = no_peer_since + policy.restart_fallback_after
        unready_peers = [e for e in ranked if not e.terminating and not identity.is_self(e)]
        if now >= fallback_at and unready_peers:
            # Rule 8: every existing peer is a candidate, ready or not, so a cluster whose
            # bootstrap pod cannot run still re-forms around the lowest ordinals that exist.
            effective = [e for e in ranked if not e.terminating]
            mode = Mode.RESTART_FALLBACK
        elif now < fallback_at:
            fallback_deadline = fallback_at

    seed_records = spread(effective, policy.count)
    seeds = tuple(e.address for e in seed_records)
    # Only seeds that were eligible (or already damped) earn damping later: remembering the unready
    # picks of the restart fallback would make them look like peers and end the fallback early.
    remembered = tuple(e.address for e in seed_records if e.eligible or e.address in damped)
    new_memory = Memory(seeds=remembered, unready_since=unready_since, no_peer_since=no_peer_since)
    candidates = tuple(Candidate(e, e.address in seeds) for e in ranked)
    deadline = earliest(damping_deadline, fallback_deadline)

    served = tuple(e.address for e in seed_records if not identity.is_self(e))
    if not served:
        # Rule 6's aim holds even when the caller is the only seed (count 1): serve it another
        # eligible peer rather than itself, so a pod whose data was lost bootstraps from the ring.
        served = tuple(e.address for e in spread([e for e in effective if not identity.is_self(e)], 1))
    if served:
        return Selection(served, seeds, mode, "", candidates, new_memory, deadline)

    own = _own_address(ranked, identity)
    if is_bootstrap and own is not None:
        reason = f"no eligible peer: {identity.pod_name} is the bootstrap pod and seeds itself"
        return Selection((own,), seeds, Mode.BOOTSTRAP, reason, candidates, new_memory, deadline)
    why = "no eligible peer yet"
    if is_bootstrap:
        why += f"; {identity.pod_name} is the bootstrap pod but its own address is unknown (set POD_IP)"
    elif identity.pod_name:
        why += f"; only ordinal {policy.bootstrap_ordinal} may seed itself"
    selection = _static_or_unavailable(policy, identity, candidates, new_memory, why)
    return Selection(
        selection.served, seeds, selection.mode, selection.reason, candidates, new_memory, deadline
    )


def _damped_seeds(
    ranked: Sequence[Endpoint], policy: Policy, memory: Memory, now: float
) -> tuple[frozenset[str], tuple[tuple[str, float], ...], float | None]:
    """Rule 5: previous seeds that are present, unready, not terminating and within their grace."""
    since = dict(memory.unready_since)
    by_address = {e.address: e for e in ranked}
    kept: set[str] = set()
    tracked: list[tuple[str, float]] = []
    deadline: float | None = None
    for address in memory.seeds:
        endpoint = by_address.get(address)
        if endpoint is None or endpoint.terminating or endpoint.ready:
            continue
        started = since.get(address, now)
        expires = started + policy.flap_grace
        if now < expires:
            kept.add(address)
            tracked.append((address, started))
            deadline = earliest(deadline, expires)
    return frozenset(kept), tuple(sorted(tracked)), deadline


def _own_address(ranked: Sequence[Endpoint], identity: Identity) -> str | None:
    if identity.pod_ip:
        return identity.pod_ip
    return next((e.address for e in ranked if identity.is_self(e)), None)


def _static_or_unavailable(
    policy: Policy, identity: Identity, candidates: tuple[Candidate, ...], memory: Memory, why: str
) -> Selection:
    # Served exactly as configured, the caller included: several static seeds that each left
    # themselves out would all wait for one another, and a brand-new cluster could never start.
    if policy.static_seeds:
        reason = f"{why}; serving CASSANDRA_SEEDS"
        return Selection(policy.static_seeds, (), Mode.STATIC, reason, candidates, memory)
    return Selection((), (), Mode.UNAVAILABLE, why, candidates, memory)


def earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)

"""The relay view: the few endpoint records a sidecar needs to run select() exactly as if it watched.

Pure: no clock, no I/O. A relay (``seedsvc serve`` without a pod identity) computes the digest of
each selection it makes; a sidecar in relay mode runs :func:`seedsvc.selection.select` with its own
identity on the digest instead of on the whole Service. docs/design.md ("Relay mode") has the proof
sketch; in short, for a pool P of candidates and ``pick(P)``, the seeds ``spread(P, count)`` plus,
when that is a single seed s, the spare ``spread(P - {s}, 1)``:

- ``spread(T, count) == spread(P, count)`` for every T with ``pick(P) <= T <= P`` (the round-robin
  over zones visits the same (depth, zone) slots, and the extras only sit after the last pick), so a
  caller's seeds are the same on the digest as on the Service;
- the spare is exactly what a caller that is the only seed is served instead of itself (rule 6);
- a caller finds another eligible endpoint in the digest exactly when the Service has one, so the
  bootstrap rule (7) decides the same.

Three pools are picked, so every caller's view of them is covered: the eligible endpoints (a sidecar
whose memory damps nothing), the relay's effective ones (eligible plus seeds within their flap grace,
rule 5, what a long-running sidecar damps too), and, only while at most one pod is eligible, the
non-terminating ones (rule 8's candidates for a caller that then has no peer). With ``count`` 3 that is
3 records, at most 12; whole-Service views would be all N.
"""

from __future__ import annotations

from collections.abc import Sequence

from seedsvc.records import Endpoint
from seedsvc.selection import Selection, rank_key, spread


def pick(pool: Sequence[Endpoint], count: int) -> tuple[Endpoint, ...]:
    """``spread(pool, count)``, plus the best record of another pod when the seeds are one pod's.

    ``pool`` must be in rank order. One pod can have two records (dual-stack: an IPv4 and an IPv6
    slice), and a caller leaves out every record of its own pod.
    """
    seeds = spread(pool, count)
    owners = {_owner(e) for e in seeds}
    if len(owners) != 1:
        return seeds
    spare = spread([e for e in pool if _owner(e) not in owners and e.address not in {s.address for s in seeds}], 1)
    return (*seeds, *spare)


def _owner(endpoint: Endpoint) -> str:
    return endpoint.pod or endpoint.address


def digest(selection: Selection, count: int) -> tuple[Endpoint, ...]:
    """The records a relay serves for ``selection`` (an identity-less select()), in rank order."""
    ranked = [candidate.endpoint for candidate in selection.candidates]
    damped = {address for address, _ in selection.memory.unready_since}
    eligible = [e for e in ranked if e.eligible]
    effective = [e for e in ranked if e.eligible or e.address in damped]
    chosen: dict[str, Endpoint] = {}
    pools: list[Sequence[Endpoint]] = [eligible, effective]
    if len({_owner(e) for e in eligible}) <= 1:
        pools.append([e for e in ranked if not e.terminating])
    for pool in pools:
        for endpoint in pick(pool, count):
            chosen.setdefault(endpoint.address, endpoint)
    return tuple(sorted(chosen.values(), key=rank_key))

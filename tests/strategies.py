"""Hypothesis strategies shared by the selection, records and state tests.

An endpoint set looks like what a source hands to select(): StatefulSet pods ``cassandra-<n>`` with
unique IPv4 or IPv6 addresses, optional zones from a small set, ready/terminating flags, now and then a
record without an ordinal or without a pod name, and now and then the same address twice with different
flags, as when an endpoint sits in two EndpointSlices while the controller moves it.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Policy

BASE = "cassandra"
ZONES = ("zone-a", "zone-b", "zone-c")
MAX_ORDINAL = 11

_V4 = ipaddress.ip_network("10.0.0.0/16")
_V6 = ipaddress.ip_network("fd00:10::/112")


def pod(ordinal: int) -> str:
    return f"{BASE}-{ordinal}"


def ipv4(n: int) -> str:
    return str(_V4[n])


def ipv6(n: int) -> str:
    return _V6[n].compressed


def addresses(*, ipv6_share: str = "mixed") -> st.SearchStrategy[str]:
    """One address, already in the canonical form sources produce. ``ipv6_share`` is ``"none"``,
    ``"all"`` or ``"mixed"``."""
    v4 = st.integers(1, 65_000).map(ipv4)
    v6 = st.integers(1, 65_000).map(ipv6)
    return {"none": v4, "all": v6, "mixed": st.one_of(v4, v6)}[ipv6_share]


# Names of records that have no StatefulSet ordinal: other workloads behind the same service, or a
# pod name the regex does not accept (leading zero).
_NON_ORDINAL_PODS = st.sampled_from(["cassandra-backup", "opscenter", "reaper-abc12", "cassandra-007"])


@st.composite
def endpoint_sets(
    draw: st.DrawFn,
    *,
    min_pods: int = 0,
    max_pods: int = 8,
    zones: bool | None = None,
    extras: bool = True,
    duplicates: bool = True,
    flags: bool = True,
) -> list[Endpoint]:
    """A source's view, unmerged and in arbitrary order.

    ``zones``: True gives every pod a zone, False none, None decides per set (and then some pods may
    lack one). ``extras`` adds records without an ordinal or without a pod name; ``duplicates`` adds a
    second record for some address with other flags; ``flags=False`` makes every record eligible.
    """
    ordinals = draw(st.lists(st.integers(0, MAX_ORDINAL), min_size=min_pods, max_size=max_pods, unique=True))
    extra_count = draw(st.integers(0, 2)) if extras else 0
    addrs = draw(st.lists(addresses(), min_size=len(ordinals) + extra_count,
                          max_size=len(ordinals) + extra_count, unique=True))
    zoned = draw(st.sampled_from(["all", "none", "some"])) if zones is None else ("all" if zones else "none")
    zone_choice = st.sampled_from(ZONES)

    def zone_for() -> str | None:
        if zoned == "all":
            return draw(zone_choice)
        if zoned == "some":
            return draw(st.one_of(st.none(), zone_choice))
        return None

    def flags_for() -> tuple[bool, bool]:
        if not flags:
            return True, False
        ready = draw(st.booleans())
        terminating = draw(st.booleans()) if draw(st.integers(0, 3)) == 0 else False
        return ready, terminating

    records: list[Endpoint] = []
    for ordinal, address in zip(ordinals, addrs, strict=False):
        ready, terminating = flags_for()
        records.append(Endpoint(address, pod(ordinal), zone_for(), ready, terminating))
    for address in addrs[len(ordinals):]:
        ready, terminating = flags_for()
        name = draw(st.one_of(st.none(), _NON_ORDINAL_PODS))
        records.append(Endpoint(address, name, zone_for(), ready, terminating))
    if duplicates and records and draw(st.booleans()):
        # The same address seen in a second slice, with its own flags.
        for original in draw(st.lists(st.sampled_from(records), min_size=1, max_size=3)):
            ready, terminating = flags_for()
            records.append(Endpoint(original.address, original.pod, original.zone, ready, terminating))
    return draw(st.permutations(records))


def ready_set(ordinals: list[int] | range, *, zone_of: dict[int, str] | None = None) -> list[Endpoint]:
    """Hand-written examples: pods with these ordinals, all ready, addresses 10.0.0.<ordinal + 1>."""
    return [Endpoint(ipv4(n + 1), pod(n), (zone_of or {}).get(n)) for n in ordinals]


@st.composite
def identities(draw: st.DrawFn, records: list[Endpoint]) -> Identity:
    """The caller: a pod in the set (by name, by address or both), a pod that is not in the set, or
    no identity at all."""
    named = [e for e in records if e.pod]
    kinds = ["absent", "none"] + (["member"] if named else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "member":
        me = draw(st.sampled_from(named))
        how = draw(st.sampled_from(["name", "ip", "both"]))
        return Identity(
            pod_name=me.pod if how != "ip" else None, pod_ip=me.address if how != "name" else None
        )
    if kind == "absent":
        used_pods = {e.pod for e in records}
        used_addrs = {e.address for e in records}
        ordinal = draw(st.integers(0, MAX_ORDINAL + 3).filter(lambda n: pod(n) not in used_pods))
        address = draw(st.one_of(st.none(), addresses().filter(lambda a: a not in used_addrs)))
        return Identity(pod_name=pod(ordinal), pod_ip=address)
    return Identity()


def policies(
    *, count: st.SearchStrategy[int] | None = None, static: bool | None = None, min_fallback_after: int = 0
) -> st.SearchStrategy[Policy]:
    """Policies with whole-second durations, so deadlines compare exactly. ``min_fallback_after=1``
    keeps the whole-cluster-restart fallback from being due at the first call."""
    static_seeds = st.lists(addresses(), min_size=1, max_size=3, unique=True).map(tuple)
    return st.builds(
        Policy,
        count=count if count is not None else st.integers(1, 5),
        flap_grace=st.integers(0, 60).map(float),
        restart_fallback_after=st.integers(min_fallback_after, 300).map(float),
        bootstrap_ordinal=st.sampled_from([0, 0, 0, 1, 2]),
        static_seeds={None: st.one_of(st.just(()), static_seeds), True: static_seeds, False: st.just(())}[static],
    )

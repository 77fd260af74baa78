"""compose() and datacenter_selection(): DESIGN.md section 7, as properties and as hand-worked cases.

Pure functions with ``now`` passed in: nothing sleeps. The expectations are written from the brief:
the caller's local list first, then each peer's seeds (name order, at most peer-count each), duplicates
removed, never the caller itself unless it is the bootstrap DC's bootstrap pod and no peer seed is known.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from seedsvc.federation import (
    NO_BOOTSTRAP_ORDINAL,
    Composition,
    FederationRules,
    PeerSeeds,
    compose,
    datacenter_selection,
)
from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Mode, Policy, Selection, select
from tests.strategies import addresses, endpoint_sets, identities, ipv4, pod, policies, ready_set

NOW = 1000.0
DAY = 86400.0

# Peer DCs' addresses in hand-worked cases: dc2 in 10.2.0.x, dc3 in 10.3.0.x.
DC2 = ("10.2.0.1", "10.2.0.2", "10.2.0.3")
DC3 = ("10.3.0.1", "10.3.0.2")


def local(records: list[Endpoint], me: Identity, policy: Policy | None = None, now: float = NOW) -> Selection:
    return select(records, policy=policy or Policy(), identity=me, now=now)


def me(n: int) -> Identity:
    return Identity(pod_name=pod(n), pod_ip=ipv4(n + 1))


def fresh(name: str, seeds: tuple[str, ...]) -> PeerSeeds:
    return PeerSeeds(name, seeds, fetched_at=NOW - 1)


def stale(name: str, seeds: tuple[str, ...], *, age: float) -> PeerSeeds:
    return PeerSeeds(name, seeds, fetched_at=NOW - age, stale=True, reason="unreachable: connection refused")


def served(result: Composition) -> tuple[str, ...]:
    return result.selection.served


# --- hand-worked cases -------------------------------------------------------------------------------


def test_local_list_then_each_peer_in_name_order_at_most_peer_count_each() -> None:
    # Seeds {0,1,2}; pod 1 is served 0,2 (rule 6), then dc2's first two, then dc3's first two.
    result = compose(local(ready_set(range(5)), me(1)), identity=me(1),
                     peers=[fresh("dc3", DC3), fresh("dc2", DC2)], rules=FederationRules(peer_count=2), now=NOW)
    assert served(result) == (ipv4(1), ipv4(3), "10.2.0.1", "10.2.0.2", "10.3.0.1", "10.3.0.2")
    assert result.selection.mode is Mode.DISCOVERED
    assert result.peer_parts == (("dc2", ("10.2.0.1", "10.2.0.2")), ("dc3", ("10.3.0.1", "10.3.0.2")))


def test_a_new_datacenter_without_eligible_local_peer_is_served_the_peers_seeds_alone() -> None:
    # DC2's very first pod: nothing local is ready, ordinal 0 of a non-bootstrap DC may not seed itself.
    no_bootstrap = Policy(bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    first = [Endpoint(ipv4(1), pod(0), ready=False)]
    result = compose(local(first, me(0), no_bootstrap), identity=me(0), peers=[fresh("dc1", DC2)],
                     rules=FederationRules(), now=NOW)
    assert served(result) == ("10.2.0.1", "10.2.0.2")
    assert result.selection.mode is Mode.PEERS
    assert ipv4(1) not in served(result)


def test_a_new_datacenter_with_no_peer_seed_known_waits() -> None:
    no_bootstrap = Policy(bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    first = [Endpoint(ipv4(1), pod(0), ready=False)]
    result = compose(local(first, me(0), no_bootstrap), identity=me(0), peers=[PeerSeeds("dc1")],
                     rules=FederationRules(), now=NOW)
    assert served(result) == ()
    assert result.selection.mode is Mode.UNAVAILABLE
    assert "no peer datacenter seed known" in result.selection.reason


def test_the_bootstrap_datacenters_pod_0_seeds_itself_only_while_no_peer_seed_is_known() -> None:
    alone = local(ready_set([0]), me(0))
    assert alone.mode is Mode.BOOTSTRAP
    rules = FederationRules(may_seed_itself=True)
    nothing_known = compose(alone, identity=me(0), peers=[PeerSeeds("dc2")], rules=rules, now=NOW)
    assert served(nothing_known) == (ipv4(1),)
    assert nothing_known.selection.mode is Mode.BOOTSTRAP
    # A peer DC exists: even the bootstrap pod joins it instead of starting a cluster of its own.
    peer_known = compose(alone, identity=me(0), peers=[fresh("dc2", DC2)], rules=rules, now=NOW)
    assert served(peer_known) == ("10.2.0.1", "10.2.0.2")
    assert peer_known.selection.mode is Mode.PEERS


def test_pod_0_of_a_datacenter_that_is_not_the_bootstrap_one_never_seeds_itself() -> None:
    alone = local(ready_set([0]), me(0))
    result = compose(alone, identity=me(0), peers=[PeerSeeds("dc2")], rules=FederationRules(), now=NOW)
    assert served(result) == ()
    assert "only the bootstrap datacenter" in result.selection.reason


def test_a_stale_peer_keeps_its_seeds_until_expiry_then_they_are_dropped() -> None:
    lst = local(ready_set(range(3)), me(2))
    kept = compose(lst, identity=me(2), peers=[stale("dc2", DC2, age=DAY - 1)], rules=FederationRules(), now=NOW)
    assert served(kept) == (ipv4(1), ipv4(2), "10.2.0.1", "10.2.0.2")
    assert kept.next_deadline == NOW + 1
    dropped = compose(lst, identity=me(2), peers=[stale("dc2", DC2, age=DAY)], rules=FederationRules(), now=NOW)
    assert served(dropped) == (ipv4(1), ipv4(2))
    # A peer that answers again is fresh whatever its age: expiry counts only while it fails.
    answering = compose(lst, identity=me(2), peers=[PeerSeeds("dc2", DC2, fetched_at=NOW - 2 * DAY)],
                        rules=FederationRules(), now=NOW)
    assert served(answering) == (ipv4(1), ipv4(2), "10.2.0.1", "10.2.0.2")
    assert answering.next_deadline is None


def test_the_callers_own_address_and_duplicates_are_skipped_and_the_next_seed_taken() -> None:
    lst = local(ready_set(range(3)), me(2))
    peers = [fresh("dc2", (ipv4(3), ipv4(1), "10.2.0.1", "10.2.0.2")), fresh("dc3", ("10.2.0.1", *DC3))]
    result = compose(lst, identity=me(2), peers=peers, rules=FederationRules(peer_count=2), now=NOW)
    # ipv4(3) is the caller (pod 2), ipv4(1) already in the local part; 10.2.0.1 then belongs to dc2.
    assert served(result) == (ipv4(1), ipv4(2), "10.2.0.1", "10.2.0.2", "10.3.0.1", "10.3.0.2")


def test_whole_datacenter_restart_fallback_only_for_a_pod_that_has_run_before() -> None:
    policy = Policy(restart_fallback_after=120, bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    unready = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in range(2)]
    first = select(unready, policy=policy, identity=me(0), now=0)
    later = select(unready, policy=policy, identity=me(0), now=200, memory=first.memory)
    assert later.mode is Mode.RESTART_FALLBACK
    has_run = compose(later, identity=me(0), peers=[PeerSeeds("dc1")], rules=FederationRules(), now=200)
    assert served(has_run) == (ipv4(2),)
    never_ran = FederationRules(may_restart_fallback=False)
    assert served(compose(later, identity=me(0), peers=[PeerSeeds("dc1")], rules=never_ran, now=200)) == ()
    joins = compose(later, identity=me(0), peers=[fresh("dc1", DC2)], rules=never_ran, now=200)
    assert served(joins) == ("10.2.0.1", "10.2.0.2")


def test_static_seeds_as_configured_only_while_no_peer_seed_is_known() -> None:
    policy = Policy(static_seeds=(ipv4(1), "10.9.0.9"), bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    lst = local([], me(0), policy)
    assert lst.mode is Mode.STATIC
    alone = compose(lst, identity=me(0), peers=[PeerSeeds("dc1")], rules=FederationRules(), now=NOW)
    assert served(alone) == (ipv4(1), "10.9.0.9")
    joined = compose(lst, identity=me(0), peers=[fresh("dc1", DC2)], rules=FederationRules(), now=NOW)
    assert served(joined) == ("10.2.0.1", "10.2.0.2")


def test_datacenter_scope_is_the_seed_set_without_self_exclusion_or_static_seeds() -> None:
    policy = Policy(static_seeds=("10.9.0.9",))
    view = datacenter_selection(ready_set(range(5)), policy=policy, now=NOW)
    assert view.served == (ipv4(1), ipv4(2), ipv4(3))
    empty = datacenter_selection([Endpoint(ipv4(1), pod(0), ready=False)], policy=policy, now=NOW)
    assert empty.served == () and empty.mode is Mode.UNAVAILABLE


def test_datacenter_scope_applies_the_whole_restart_fallback() -> None:
    policy = Policy(restart_fallback_after=120, count=2)
    unready = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in range(3)]
    first = datacenter_selection(unready, policy=policy, now=0)
    assert first.served == () and first.next_deadline == 120
    later = datacenter_selection(unready, policy=policy, now=120, memory=first.memory)
    assert later.served == (ipv4(1), ipv4(2)) and later.mode is Mode.RESTART_FALLBACK


# --- properties -------------------------------------------------------------------------------------

PEER_NAMES = st.sampled_from(["dc1", "dc2", "dc3", "eu-west", "us-east"])


@st.composite
def peer_states(draw: st.DrawFn, local_addresses: list[str]) -> list[PeerSeeds]:
    """Peer DCs in arbitrary order, seeds now and then overlapping the local ones or each other."""
    names = draw(st.lists(PEER_NAMES, max_size=4, unique=True))
    pool = st.one_of(addresses(), st.sampled_from(local_addresses)) if local_addresses else addresses()
    peers = []
    for name in names:
        seeds = tuple(draw(st.lists(pool, max_size=5, unique=True)))
        answered = bool(seeds) or draw(st.booleans())
        fetched_at = NOW - draw(st.integers(0, 2 * int(DAY))) if answered else None
        peers.append(PeerSeeds(name, seeds, fetched_at=fetched_at, stale=draw(st.booleans())))
    return peers


Scenario = tuple[Selection, Identity, list[PeerSeeds], FederationRules]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    records = draw(endpoint_sets())
    identity = draw(identities(records))
    policy = draw(policies())
    if draw(st.booleans()):
        policy = replace(policy, bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
    # A first call at 0 and a second at NOW: the restart fallback is due in some examples.
    first = select(records, policy=policy, identity=identity, now=0)
    selection = select(records, policy=policy, identity=identity, now=NOW, memory=first.memory)
    peers = draw(peer_states([e.address for e in records] + ([identity.pod_ip] if identity.pod_ip else [])))
    rules = FederationRules(peer_count=draw(st.integers(1, 3)), may_seed_itself=draw(st.booleans()),
                            may_restart_fallback=draw(st.booleans()), expiry=DAY)
    return selection, identity, peers, rules


@given(scenarios())
def test_properties_of_the_composed_list(scenario: Scenario) -> None:
    lst, identity, peers, rules = scenario
    result = compose(lst, identity=identity, peers=peers, rules=rules, now=NOW)
    out = served(result)
    usable = {p.name: p.usable_seeds(NOW, rules.expiry) for p in peers}
    known = {a for seeds in usable.values() for a in seeds if a != identity.pod_ip} - set(lst.served)

    assert len(out) == len(set(out)), "duplicates removed"
    assert (out == ()) == (result.selection.mode is Mode.UNAVAILABLE), "never an empty list to serve"
    # Every address comes from the local list or a peer; expired peers contribute nothing.
    assert set(out) <= set(lst.served) | {a for seeds in usable.values() for a in seeds}
    # Peers in name order, each a subsequence of its own order, at most peer_count.
    assert [name for name, _ in result.peer_parts] == sorted(p.name for p in peers)
    for name, part in result.peer_parts:
        assert len(part) <= rules.peer_count
        order = list(usable[name])
        assert [order.index(a) for a in part] == sorted(order.index(a) for a in part)
    peer_tail = tuple(a for _, part in result.peer_parts for a in part)
    assert out[len(out) - len(peer_tail):] == peer_tail if peer_tail else True
    # The caller is its own seed only as the bootstrap pod of the bootstrap DC, or from static seeds,
    # and then only while no peer seed is known.
    if identity.pod_ip in out:
        assert not known
        assert (lst.mode is Mode.BOOTSTRAP and rules.may_seed_itself) or lst.mode is Mode.STATIC
        assert out == lst.served
    # A caller with no local part joins through its peers when any peer seed is known.
    if lst.mode is Mode.UNAVAILABLE or (lst.mode is Mode.BOOTSTRAP and not rules.may_seed_itself):
        assert out == peer_tail
        assert (result.selection.mode is Mode.PEERS) == bool(known)
    if lst.mode is Mode.DISCOVERED:
        assert out[: len(lst.served)] == tuple(a for a in lst.served if a != identity.pod_ip)
    if lst.mode is Mode.RESTART_FALLBACK and not rules.may_restart_fallback:
        assert not set(out) & (set(lst.served) - set(peer_tail))


@given(st.data())
def test_datacenter_scope_equals_every_plain_callers_seed_set(data: st.DataObject) -> None:
    records = data.draw(endpoint_sets())
    policy = data.draw(policies(min_fallback_after=1))
    view = datacenter_selection(records, policy=policy, now=0)
    identity = data.draw(identities(records))
    caller = select(records, policy=policy, identity=identity, now=0)
    # Rule 6: the seed set is the same for every caller; only what each is served differs.
    assert view.served == caller.seeds
    assert (view.served == ()) == (view.mode is Mode.UNAVAILABLE)
    assert not set(view.served) - {e.address for e in records}

"""compose() and datacenter_selection(): docs/design.md section 8, as properties and as hand-worked cases.

Pure functions with ``now`` passed in: nothing sleeps. The expectations are written from the brief:
the caller's local list first, then each peer's seeds (name order, at most peer-count each), duplicates
removed, never the caller itself unless it is the bootstrap DC's bootstrap pod and no peer seed is known.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import assume, given
from hypothesis import strategies as st

from seedsvc.federation import (
    NO_BOOTSTRAP_ORDINAL,
    Composition,
    FederationMemory,
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


# --- regional recovery: the bootstrap-ordinal pod of a DC that has run before ------------------------

NO_BOOTSTRAP = Policy(restart_fallback_after=120, bootstrap_ordinal=NO_BOOTSTRAP_ORDINAL)
HAS_RUN = FederationRules(has_run_before=True, recovery_after=120)
ALONE = [Endpoint(ipv4(1), pod(0), ready=False)]
"""dc2 restarted under OrderedReady: pod 0 exists, nothing else does."""


def walk(records: list[Endpoint], caller: Identity, peers_at: dict[float, list[PeerSeeds]],
         rules: FederationRules = HAS_RUN) -> dict[float, Composition]:
    """Compose at each time in order, carrying both memories as the sidecar does."""
    local_memory, memory, out = None, FederationMemory(), {}
    for now, peers in sorted(peers_at.items()):
        lst = select(records, policy=NO_BOOTSTRAP, identity=caller, now=now, memory=local_memory)
        out[now] = compose(lst, identity=caller, peers=peers, rules=rules, now=now, memory=memory)
        local_memory, memory = lst.memory, out[now].memory
    return out


def dc1_down() -> list[PeerSeeds]:
    # dc1 answered until t=-10, failing since: its seeds are stale (not expired).
    return [PeerSeeds("dc1", DC2[:2], fetched_at=-10, stale=True, reason="unreachable: refused")]


def test_pod_0_that_has_run_before_seeds_itself_after_the_fallback_time_then_stale_peer_seeds() -> None:
    out = walk(ALONE, me(0), {t: dc1_down() for t in (0, 60, 119, 120, 500)})
    for early in (0, 60, 119):
        assert served(out[early]) == ("10.2.0.1", "10.2.0.2")
        assert out[early].selection.mode is Mode.PEERS
        assert out[early].next_deadline == 120, "the composer wakes when recovery comes due"
    for late in (120, 500):
        assert served(out[late]) == (ipv4(1), "10.2.0.1", "10.2.0.2")
        assert out[late].selection.mode is Mode.BOOTSTRAP
        assert "has run before" in out[late].selection.reason


def test_pod_0_that_has_run_before_with_no_peer_seed_known_at_all_serves_itself_alone() -> None:
    # The sidecar restarted too: peer seeds are not persisted, so nothing at all is known of dc1.
    out = walk(ALONE, me(0), {t: [PeerSeeds("dc1", reason="unreachable: refused", stale=True)] for t in (0, 119, 120)})
    assert served(out[0]) == () and served(out[119]) == ()
    assert served(out[120]) == (ipv4(1),)


def test_never_for_a_pod_without_a_restored_state_file() -> None:
    # A new DC, or a pod whose data volume (and with it the state file) was lost: it waits.
    out = walk(ALONE, me(0), {t: dc1_down() for t in (0, 120, 10_000)}, rules=FederationRules())
    assert all(ipv4(1) not in served(c) for c in out.values())
    out = walk(ALONE, me(0), {t: [PeerSeeds("dc1")] for t in (0, 120, 10_000)}, rules=FederationRules())
    assert all(served(c) == () for c in out.values())


def test_never_while_a_fresh_peer_seed_exists() -> None:
    out = walk(ALONE, me(0), {t: [fresh("dc1", DC2)] for t in (0, 120, 10_000)})
    assert all(served(c) == ("10.2.0.1", "10.2.0.2") for c in out.values())
    assert all(c.memory.alone_since is None for c in out.values())


def test_never_while_an_eligible_local_peer_exists() -> None:
    both = [Endpoint(ipv4(1), pod(0), ready=False), Endpoint(ipv4(2), pod(1))]
    out = walk(both, me(0), {t: dc1_down() for t in (0, 120, 10_000)})
    assert all(served(c) == (ipv4(2), "10.2.0.1", "10.2.0.2") for c in out.values())


def test_never_for_a_pod_that_is_not_the_bootstrap_ordinal() -> None:
    pod_1_alone = [Endpoint(ipv4(2), pod(1), ready=False)]
    out = walk(pod_1_alone, me(1), {t: dc1_down() for t in (0, 120, 10_000)})
    assert all(ipv4(2) not in served(c) for c in out.values())


def test_a_fresh_peer_seed_in_between_restarts_the_wait() -> None:
    peers: dict[float, list[PeerSeeds]] = {0: dc1_down(), 100: [fresh("dc1", DC2)], 150: dc1_down(),
                                           269: dc1_down(), 270: dc1_down()}
    out = walk(ALONE, me(0), peers)
    assert out[100].memory.alone_since is None
    assert out[150].memory.alone_since == 150
    assert ipv4(1) not in served(out[269])
    assert served(out[270])[0] == ipv4(1)


def test_restart_fallback_peers_follow_the_recovering_pod() -> None:
    # Both pods exist, both unready (started together): pod 0 seeds itself, pod 1 is only served pod 0.
    unready = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in range(2)]
    zero = walk(unready, me(0), {t: dc1_down() for t in (0, 120)})
    assert served(zero[120]) == (ipv4(1), ipv4(2), "10.2.0.1", "10.2.0.2")
    one = walk(unready, me(1), {t: dc1_down() for t in (0, 120)})
    assert served(one[120]) == (ipv4(1), "10.2.0.1", "10.2.0.2")


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


Scenario = tuple[Selection, Identity, list[PeerSeeds], FederationRules, FederationMemory]


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
                            may_restart_fallback=draw(st.booleans()), expiry=DAY,
                            has_run_before=draw(st.booleans()), bootstrap_ordinal=draw(st.sampled_from([0, 1])),
                            recovery_after=float(draw(st.integers(0, 2 * int(NOW)))))
    memory = FederationMemory(draw(st.one_of(st.none(), st.integers(0, int(NOW)).map(float))))
    return selection, identity, peers, rules, memory


@given(scenarios())
def test_properties_of_the_composed_list(scenario: Scenario) -> None:
    lst, identity, peers, rules, memory = scenario
    result = compose(lst, identity=identity, peers=peers, rules=rules, now=NOW, memory=memory)
    out = served(result)
    if recovering(identity, result):
        # Regional recovery: the caller first, then what it would have been served otherwise.
        without = compose(lst, identity=identity, peers=peers, rules=replace(rules, has_run_before=False), now=NOW,
                          memory=memory)
        assert out == (identity.pod_ip, *served(without))
        return
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


def fresh_peer_seed(peers: list[PeerSeeds], identity: Identity) -> bool:
    return any(a != identity.pod_ip for p in peers if not p.stale for a in p.usable_seeds(NOW, DAY))


def recovering(identity: Identity, result: Composition) -> bool:
    """The caller is served itself first by the regional-recovery rule."""
    out = served(result)
    return bool(identity.pod_ip and out and out[0] == identity.pod_ip and "has run before" in result.selection.reason)


@given(scenarios())
def test_regional_recovery_happens_exactly_when_its_rule_holds(scenario: Scenario) -> None:
    lst, identity, peers, rules, memory = scenario
    assume(peers or not (rules.may_seed_itself and rules.may_restart_fallback))
    result = compose(lst, identity=identity, peers=peers, rules=rules, now=NOW, memory=memory)
    alone = lst.memory.no_peer_since is not None and not fresh_peer_seed(peers, identity)
    since = (memory.alone_since if memory.alone_since is not None else NOW) if alone else None
    assert result.memory.alone_since == since
    without = compose(lst, identity=identity, peers=peers, rules=replace(rules, has_run_before=False), now=NOW,
                      memory=memory)
    may = (since is not None and rules.has_run_before and bool(identity.pod_ip)
           and identity.ordinal == rules.bootstrap_ordinal and identity.pod_ip not in served(without))
    due = since is not None and since + rules.recovery_after <= NOW
    assert recovering(identity, result) == (may and due)
    if not (may and due):
        assert served(result) == served(without)
    if may and not due:
        # Pending recovery is a deadline the composer wakes for.
        assert since is not None and result.next_deadline is not None
        assert result.next_deadline <= since + rules.recovery_after


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

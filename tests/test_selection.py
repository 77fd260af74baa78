"""select(): the seed selection rules of docs/design.md section 2, as properties and as its scenarios.

select() is pure and takes ``now``, so time is just a number here: nothing sleeps.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from seedsvc.records import Endpoint, Identity, merge_duplicates
from seedsvc.selection import Memory, Mode, Policy, Selection, select
from tests.strategies import endpoint_sets, identities, ipv4, ipv6, pod, policies, ready_set

# ---------------------------------------------------------------------------------------------------
# helpers: the expectations are written from docs/design.md, not from selection.py


def merged(records: list[Endpoint]) -> tuple[Endpoint, ...]:
    return merge_duplicates(records)


def eligible(records: list[Endpoint]) -> list[Endpoint]:
    return [e for e in merged(records) if e.ready and not e.terminating]


def by_address(records: list[Endpoint]) -> dict[str, Endpoint]:
    return {e.address: e for e in merged(records)}


def own_addresses(records: list[Endpoint], identity: Identity) -> set[str]:
    own = {e.address for e in merged(records) if identity.is_self(e)}
    return own | ({identity.pod_ip} if identity.pod_ip else set())


def peers(records: list[Endpoint], identity: Identity) -> list[Endpoint]:
    return [e for e in eligible(records) if not identity.is_self(e)]


def outranks(a: Endpoint, b: Endpoint) -> bool:
    """Rule 2, written out: ordinals ascending; records without one after, by name, then address."""
    if a.ordinal is not None and b.ordinal is not None and a.ordinal != b.ordinal:
        return a.ordinal < b.ordinal
    if (a.ordinal is None) != (b.ordinal is None):
        return a.ordinal is not None
    if (a.pod or "") != (b.pod or ""):
        return (a.pod or "") < (b.pod or "")
    ia, ib = ipaddress.ip_address(a.address), ipaddress.ip_address(b.address)
    return (ia.version, int(ia)) < (ib.version, int(ib))


def with_flags(
    records: list[Endpoint], address: str, *, ready: bool | None = None, terminating: bool | None = None
) -> list[Endpoint]:
    """Every record of ``address`` (in every slice) with the flags given; the others left as they are."""
    return [
        replace(
            e,
            ready=e.ready if ready is None else ready,
            terminating=e.terminating if terminating is None else terminating,
        )
        if e.address == address
        else e
        for e in records
    ]


def without(records: list[Endpoint], address: str) -> list[Endpoint]:
    return [e for e in records if e.address != address]


def outcome(selection: Selection) -> tuple[object, ...]:
    return (selection.served, selection.seeds, selection.mode, selection.candidates)


NO_ONE = Identity()

# ---------------------------------------------------------------------------------------------------
# rule 2: the result never depends on the order the API or DNS returned records in


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_selection_is_independent_of_record_order_and_repeated_records(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    repeated = data.draw(st.lists(st.sampled_from(records))) if records else []
    shuffled = data.draw(st.permutations(records + repeated))
    now = data.draw(st.integers(0, 1000).map(float))
    assert select(shuffled, policy=policy, identity=identity, now=now) == select(
        records, policy=policy, identity=identity, now=now
    )


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_same_inputs_give_the_same_selection(records: list[Endpoint], data: st.DataObject, policy: Policy) -> None:
    identity = data.draw(identities(records))
    first = select(records, policy=policy, identity=identity, now=0.0)
    later = data.draw(st.integers(0, 500).map(float))
    again = [select(records, policy=policy, identity=identity, now=later, memory=first.memory) for _ in range(2)]
    assert again[0] == again[1]


# ---------------------------------------------------------------------------------------------------
# rules 1 and 4: eligibility and count


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_seeds_and_served_never_exceed_count(records: list[Endpoint], data: st.DataObject, policy: Policy) -> None:
    identity = data.draw(identities(records))
    now = data.draw(st.integers(0, 1000).map(float))
    selection = select(records, policy=policy, identity=identity, now=now)
    assert len(selection.seeds) <= policy.count
    assert len(set(selection.seeds)) == len(selection.seeds)
    if selection.mode is not Mode.STATIC:
        assert len(selection.served) <= policy.count


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_outside_fallback_the_seeds_are_the_eligible_records_up_to_count(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    selection = select(records, policy=policy, identity=identity, now=0.0)
    assume(selection.mode is not Mode.RESTART_FALLBACK)
    expected = {e.address for e in eligible(records)}
    assert set(selection.seeds) <= expected
    if len(expected) <= policy.count:
        assert set(selection.seeds) == expected
    else:
        assert len(selection.seeds) == policy.count


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_served_list_is_empty_exactly_when_unavailable(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    first = select(records, policy=policy, identity=identity, now=0.0)
    later_records = data.draw(endpoint_sets())
    later = select(later_records, policy=policy, identity=identity,
                   now=data.draw(st.integers(0, 500).map(float)), memory=first.memory)
    for selection in (first, later):
        assert (selection.served == ()) == (selection.mode is Mode.UNAVAILABLE)


# ---------------------------------------------------------------------------------------------------
# rules 2 and 3: order and zones


@given(records=endpoint_sets(zones=False), policy=policies(min_fallback_after=1))
def test_without_zones_the_seeds_are_the_best_ranked_eligible_records(
    records: list[Endpoint], policy: Policy
) -> None:
    selection = select(records, policy=policy, identity=NO_ONE, now=0.0)
    table = by_address(records)
    seeds = [table[a] for a in selection.seeds]
    for first, second in itertools.pairwise(seeds):
        assert outranks(first, second)
    passed_over = [e for e in eligible(records) if e.address not in selection.seeds]
    for seed in seeds:
        for other in passed_over:
            assert outranks(seed, other), (seed, other)


@given(records=endpoint_sets(zones=True), policy=policies(min_fallback_after=1))
def test_with_zones_every_zone_contributes_when_count_allows(records: list[Endpoint], policy: Policy) -> None:
    selection = select(records, policy=policy, identity=NO_ONE, now=0.0)
    zones = {e.zone for e in eligible(records)}
    seed_zones = Counter(by_address(records)[a].zone for a in selection.seeds)
    if policy.count >= len(zones):
        assert set(seed_zones) == zones
    else:
        assert len(seed_zones) == policy.count


@given(records=endpoint_sets(zones=True), policy=policies(min_fallback_after=1))
def test_zones_take_turns_so_counts_differ_by_at_most_one(records: list[Endpoint], policy: Policy) -> None:
    per_zone = Counter(e.zone for e in eligible(records))
    assume(per_zone)
    enough = math.ceil(policy.count / len(per_zone))
    assume(all(n >= enough for n in per_zone.values()))
    selection = select(records, policy=policy, identity=NO_ONE, now=0.0)
    seed_zones = Counter(by_address(records)[a].zone for a in selection.seeds)
    counts = [seed_zones.get(zone, 0) for zone in per_zone]
    assert max(counts) - min(counts) <= 1
    # ...and the zones that got the extra seed are the first ones in sorted order.
    ordered = [seed_zones.get(zone, 0) for zone in sorted(per_zone, key=lambda z: (z is None, z or ""))]
    assert ordered == sorted(ordered, reverse=True)


@given(records=endpoint_sets(zones=None), policy=policies(min_fallback_after=1))
def test_each_zone_contributes_its_lowest_ranked_records_and_seeds_stay_in_rank_order(
    records: list[Endpoint], policy: Policy
) -> None:
    selection = select(records, policy=policy, identity=NO_ONE, now=0.0)
    table = by_address(records)
    seeds = [table[a] for a in selection.seeds]
    for first, second in itertools.pairwise(seeds):
        assert outranks(first, second)
    for seed in seeds:
        skipped = [e for e in eligible(records) if e.zone == seed.zone and e.address not in selection.seeds]
        assert all(outranks(seed, other) for other in skipped)


# ---------------------------------------------------------------------------------------------------
# rule 6: self-exclusion, and one seed set for every caller


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_caller_is_never_served_itself_while_another_seed_or_eligible_peer_exists(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    selection = select(records, policy=policy, identity=identity, now=0.0)
    if peers(records, identity):
        assert not own_addresses(records, identity) & set(selection.served)
        assert selection.mode in (Mode.DISCOVERED, Mode.RESTART_FALLBACK)
        assert selection.served


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_seed_set_is_the_same_for_every_caller(records: list[Endpoint], data: st.DataObject, policy: Policy) -> None:
    # Memory from an earlier view of the same pods with other flags, so damping takes part.
    earlier = [replace(e, ready=data.draw(st.booleans())) for e in records]
    memory = select(earlier, policy=policy, identity=NO_ONE, now=0.0).memory
    now = data.draw(st.integers(0, 100).map(float))
    callers = [data.draw(identities(records)) for _ in range(3)] + [NO_ONE]
    results = [select(records, policy=policy, identity=c, now=now, memory=memory) for c in callers]
    # Rule 8 is about the caller's own peers, so a caller in the restart fallback is exempt (see the
    # restart-fallback tests below); rules 1-5 give every other caller the same set.
    seed_sets = {r.seeds for r in results if r.mode is not Mode.RESTART_FALLBACK}
    assert len(seed_sets) <= 1


def test_design_example_pod_1_is_served_0_and_2_and_pod_4_is_served_0_1_2() -> None:
    records = ready_set(range(4))
    policy = Policy(count=3)
    for_pod_1 = select(records, policy=policy, identity=Identity(pod_name=pod(1)), now=0.0)
    for_pod_4 = select(records, policy=policy, identity=Identity(pod_name=pod(4)), now=0.0)
    assert for_pod_1.seeds == for_pod_4.seeds == (ipv4(1), ipv4(2), ipv4(3))
    assert for_pod_1.served == (ipv4(1), ipv4(3))
    assert for_pod_4.served == (ipv4(1), ipv4(2), ipv4(3))


def test_caller_known_only_by_its_address_is_left_out_too() -> None:
    selection = select(ready_set(range(3)), policy=Policy(), identity=Identity(pod_ip=ipv4(1)), now=0.0)
    assert selection.served == (ipv4(2), ipv4(3))


def test_only_seed_with_count_one_is_served_another_eligible_peer_not_itself() -> None:
    selection = select(ready_set(range(3)), policy=Policy(count=1), identity=Identity(pod_name=pod(0)), now=0.0)
    assert selection.seeds == (ipv4(1),)
    assert selection.served == (ipv4(2),)
    assert selection.mode is Mode.DISCOVERED


# ---------------------------------------------------------------------------------------------------
# rule 7: bootstrap without islands


@given(records=endpoint_sets(), data=st.data(), policy=policies())
def test_only_the_bootstrap_pod_is_ever_served_itself(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    first = select(records, policy=policy, identity=identity, now=0.0)
    later = select(records, policy=policy, identity=identity, now=data.draw(st.integers(0, 400).map(float)),
                   memory=first.memory)
    for selection in (first, later):
        served_self = own_addresses(records, identity) & set(selection.served)
        if selection.mode is Mode.BOOTSTRAP:
            assert identity.ordinal == policy.bootstrap_ordinal
            assert not peers(records, identity)
            assert len(selection.served) == 1
            assert served_self == set(selection.served)
        elif selection.mode is Mode.STATIC:
            # CASSANDRA_SEEDS is served exactly as configured, the caller included.
            assert selection.served == policy.static_seeds
        else:
            assert not served_self


@given(records=endpoint_sets(), data=st.data(), policy=policies(min_fallback_after=1))
def test_other_pods_without_an_eligible_peer_are_unavailable_or_static(
    records: list[Endpoint], data: st.DataObject, policy: Policy
) -> None:
    identity = data.draw(identities(records))
    assume(identity.ordinal != policy.bootstrap_ordinal)
    # No peer is eligible: every other record is unready or terminating (in every slice).
    records = [
        e if identity.is_self(e) else replace(e, ready=False, terminating=data.draw(st.booleans()))
        for e in records
    ]
    selection = select(records, policy=policy, identity=identity, now=0.0)
    if policy.static_seeds:
        assert selection.mode is Mode.STATIC
        assert set(selection.served) <= set(policy.static_seeds)
        assert selection.served
    else:
        assert selection.mode is Mode.UNAVAILABLE
        assert selection.served == ()


@pytest.mark.parametrize("bootstrap_ordinal", [0, 2])
def test_configured_bootstrap_pod_alone_serves_itself_and_pod_0_does_not(bootstrap_ordinal: int) -> None:
    records = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in range(3)]
    policy = Policy(bootstrap_ordinal=bootstrap_ordinal)
    for n in range(3):
        selection = select(records, policy=policy, identity=Identity(pod_name=pod(n)), now=0.0)
        if n == bootstrap_ordinal:
            assert (selection.mode, selection.served) == (Mode.BOOTSTRAP, (ipv4(n + 1),))
        else:
            assert (selection.mode, selection.served) == (Mode.UNAVAILABLE, ())


def test_bootstrap_pod_not_yet_in_any_record_seeds_itself_by_pod_ip() -> None:
    identity = Identity(pod_name=pod(0), pod_ip=ipv4(1))
    selection = select([], policy=Policy(), identity=identity, now=0.0)
    assert (selection.mode, selection.served) == (Mode.BOOTSTRAP, (ipv4(1),))


def test_bootstrap_pod_whose_address_is_unknown_is_unavailable_and_says_why() -> None:
    selection = select([], policy=Policy(), identity=Identity(pod_name=pod(0)), now=0.0)
    assert (selection.mode, selection.served) == (Mode.UNAVAILABLE, ())
    assert "POD_IP" in selection.reason


def test_no_view_yet_serves_static_seeds_as_configured_or_nothing() -> None:
    static = Policy(static_seeds=(ipv4(1), ipv4(2)))
    caller = Identity(pod_name=pod(1), pod_ip=ipv4(2))
    with_static = select(None, policy=static, identity=caller, now=0.0)
    # The caller stays in: two static seeds that each left themselves out would wait for each other.
    assert (with_static.mode, with_static.served, with_static.seeds) == (Mode.STATIC, (ipv4(1), ipv4(2)), ())
    without_static = select(None, policy=Policy(), identity=caller, now=0.0)
    assert (without_static.mode, without_static.served) == (Mode.UNAVAILABLE, ())
    assert without_static.next_deadline is None


# ---------------------------------------------------------------------------------------------------
# rule 5: flap damping


def settled(records: list[Endpoint], policy: Policy, now: float = 0.0) -> Selection:
    return select(records, policy=policy, identity=NO_ONE, now=now)


# A fallback due at once (restart_fallback_after=0) would make the unready seed a candidate again.
grace_policies = policies(min_fallback_after=1).filter(lambda p: p.flap_grace >= 1)


@given(records=endpoint_sets(min_pods=1, flags=False), policy=grace_policies, data=st.data())
def test_unready_seed_keeps_its_place_for_exactly_the_grace_period(
    records: list[Endpoint], policy: Policy, data: st.DataObject
) -> None:
    first = settled(records, policy)
    flapper = data.draw(st.sampled_from(first.seeds))
    flapped = with_flags(records, flapper, ready=False)
    t1 = data.draw(st.integers(1, 100).map(float))
    expires = t1 + policy.flap_grace

    during = select(flapped, policy=policy, identity=NO_ONE, now=t1, memory=first.memory)
    assert during.seeds == first.seeds
    assert during.next_deadline == expires
    middle = t1 + data.draw(st.integers(0, int(policy.flap_grace) - 1))
    later = select(flapped, policy=policy, identity=NO_ONE, now=middle, memory=during.memory)
    assert later.seeds == first.seeds
    assert later.next_deadline == expires
    just_before = select(flapped, policy=policy, identity=NO_ONE, now=expires - 0.001, memory=later.memory)
    assert just_before.seeds == first.seeds

    replaced = select(flapped, policy=policy, identity=NO_ONE, now=expires, memory=just_before.memory)
    assert flapper not in replaced.seeds
    assert replaced.seeds == settled(flapped, policy, now=expires).seeds


@given(records=endpoint_sets(min_pods=1, flags=False), policy=policies(), data=st.data())
def test_non_seed_that_turns_unready_is_not_damped(
    records: list[Endpoint], policy: Policy, data: st.DataObject
) -> None:
    first = settled(records, policy)
    others = [e.address for e in merged(records) if e.address not in first.seeds]
    assume(others)
    flapped = with_flags(records, data.draw(st.sampled_from(others)), ready=False)
    after = select(flapped, policy=policy, identity=NO_ONE, now=5.0, memory=first.memory)
    assert after.seeds == first.seeds
    assert after.memory.unready_since == ()
    assert after.next_deadline is None


@given(
    records=endpoint_sets(min_pods=1, flags=False),
    policy=grace_policies,
    data=st.data(),
    how=st.sampled_from(["terminating", "deleted"]),
)
def test_terminating_or_deleted_seed_is_replaced_at_once(
    records: list[Endpoint], policy: Policy, data: st.DataObject, how: str
) -> None:
    first = settled(records, policy)
    gone = data.draw(st.sampled_from(first.seeds))
    changed = with_flags(records, gone, ready=False, terminating=True) if how == "terminating" else without(
        records, gone
    )
    after = select(changed, policy=policy, identity=NO_ONE, now=1.0, memory=first.memory)
    assert gone not in after.seeds
    assert after.seeds == settled(changed, policy, now=1.0).seeds


@given(records=endpoint_sets(min_pods=1, flags=False), policy=grace_policies, data=st.data())
def test_seed_that_comes_back_within_grace_changes_nothing(
    records: list[Endpoint], policy: Policy, data: st.DataObject
) -> None:
    identity = data.draw(identities(records))
    first = select(records, policy=policy, identity=identity, now=0.0)
    assume(first.mode is Mode.DISCOVERED)
    flapper = data.draw(st.sampled_from(first.seeds))
    t1 = data.draw(st.integers(1, 100).map(float))
    down = select(with_flags(records, flapper, ready=False), policy=policy, identity=identity, now=t1,
                  memory=first.memory)
    back_at = t1 + data.draw(st.integers(0, int(policy.flap_grace) - 1))
    back = select(records, policy=policy, identity=identity, now=back_at, memory=down.memory)
    assert (down.served, down.seeds, down.mode) == (first.served, first.seeds, first.mode)
    assert outcome(back) == outcome(first)
    assert back.memory == first.memory
    assert back.next_deadline is None


def test_two_seeds_going_unready_at_different_times_announce_the_earlier_expiry() -> None:
    records = ready_set(range(5))
    policy = Policy(flap_grace=30.0)
    first = settled(records, policy)
    one_down = with_flags(records, ipv4(2), ready=False)
    a = select(one_down, policy=policy, identity=NO_ONE, now=10.0, memory=first.memory)
    two_down = with_flags(one_down, ipv4(1), ready=False)
    b = select(two_down, policy=policy, identity=NO_ONE, now=20.0, memory=a.memory)
    assert b.seeds == first.seeds
    assert b.next_deadline == 40.0
    c = select(two_down, policy=policy, identity=NO_ONE, now=40.0, memory=b.memory)
    assert c.seeds == (ipv4(1), ipv4(3), ipv4(4))
    assert c.next_deadline == 50.0
    d = select(two_down, policy=policy, identity=NO_ONE, now=50.0, memory=c.memory)
    assert d.seeds == (ipv4(3), ipv4(4), ipv4(5))
    assert d.next_deadline is None


# ---------------------------------------------------------------------------------------------------
# rule 8: the whole-cluster-restart fallback


@st.composite
def cluster_restarts(draw: st.DrawFn) -> tuple[list[Endpoint], Identity, Policy]:
    """Pods that exist but none is ready (some terminating), and a caller that is not the bootstrap pod."""
    policy = draw(policies(min_fallback_after=1))
    records = draw(endpoint_sets(min_pods=1, zones=False, extras=False, duplicates=False, flags=False))
    records = [replace(e, ready=False, terminating=draw(st.integers(0, 4)) == 0) for e in records]
    identity = draw(identities(records).filter(lambda i: i.ordinal != policy.bootstrap_ordinal))
    return records, identity, policy


@given(case=cluster_restarts(), t0=st.integers(0, 100).map(float))
def test_unready_peers_become_candidates_exactly_when_the_fallback_is_due(
    case: tuple[list[Endpoint], Identity, Policy], t0: float
) -> None:
    records, identity, policy = case
    due = t0 + policy.restart_fallback_after
    first = select(records, policy=policy, identity=identity, now=t0)
    assert first.mode in (Mode.UNAVAILABLE, Mode.STATIC)
    assert first.next_deadline == due
    before = select(records, policy=policy, identity=identity, now=due - 0.001, memory=first.memory)
    assert before.mode is first.mode
    assert before.served == first.served
    assert before.seeds == ()

    at = select(records, policy=policy, identity=identity, now=due, memory=before.memory)
    candidates = sorted(
        (e for e in records if not e.terminating),
        key=lambda e: (e.ordinal is None, e.ordinal or 0, e.pod or "", e.address),
    )
    if not [e for e in candidates if not identity.is_self(e)]:
        assert at.mode is first.mode  # nobody else exists to re-form with
        assert at.seeds == ()
        return
    assert at.mode is Mode.RESTART_FALLBACK
    assert at.seeds == tuple(e.address for e in candidates[: policy.count])
    assert at.served
    assert not own_addresses(records, identity) & set(at.served)
    assert set(at.served) <= {e.address for e in candidates}


@given(case=cluster_restarts(), data=st.data())
def test_fallback_lasts_while_no_peer_is_ready_and_ends_as_soon_as_one_is(
    case: tuple[list[Endpoint], Identity, Policy], data: st.DataObject
) -> None:
    records, identity, policy = case
    first = select(records, policy=policy, identity=identity, now=0.0)
    due = policy.restart_fallback_after
    at = select(records, policy=policy, identity=identity, now=due, memory=first.memory)
    assume(at.mode is Mode.RESTART_FALLBACK)
    # Damping memory must not make the unready fallback picks look like eligible peers.
    again = select(records, policy=policy, identity=identity, now=due + 1, memory=at.memory)
    assert again.mode is Mode.RESTART_FALLBACK
    assert again.seeds == at.seeds

    peer = data.draw(st.sampled_from([e for e in records if not e.terminating and not identity.is_self(e)]))
    recovered = with_flags(records, peer.address, ready=True)
    after = select(recovered, policy=policy, identity=identity, now=due + 2, memory=again.memory)
    assert after.mode is Mode.DISCOVERED
    assert after.served == (peer.address,)
    assert after.seeds == (peer.address,)


def test_fallback_picks_lowest_existing_ordinals_when_pod_0_cannot_be_scheduled() -> None:
    # Pod 0 is Pending (no endpoint at all); 1-4 run but cannot become ready without a seed.
    records = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in (1, 2, 3, 4)]
    policy = Policy(restart_fallback_after=120.0)
    pod_3 = Identity(pod_name=pod(3))
    first = select(records, policy=policy, identity=pod_3, now=1000.0)
    assert (first.mode, first.served, first.next_deadline) == (Mode.UNAVAILABLE, (), 1120.0)
    due = select(records, policy=policy, identity=pod_3, now=1120.0, memory=first.memory)
    assert due.mode is Mode.RESTART_FALLBACK
    assert due.seeds == (ipv4(2), ipv4(3), ipv4(4))
    assert due.served == (ipv4(2), ipv4(3))
    pod_1 = select(records, policy=policy, identity=Identity(pod_name=pod(1)), now=1120.0, memory=first.memory)
    assert pod_1.served == (ipv4(3), ipv4(4))


def test_fallback_timer_is_not_started_while_a_damped_seed_still_counts_as_a_peer() -> None:
    records = ready_set(range(2))
    policy = Policy(flap_grace=30.0, restart_fallback_after=120.0)
    pod_1 = Identity(pod_name=pod(1))
    first = select(records, policy=policy, identity=pod_1, now=0.0)
    down = with_flags(records, ipv4(1), ready=False)
    damped = select(down, policy=policy, identity=pod_1, now=10.0, memory=first.memory)
    assert (damped.served, damped.next_deadline) == ((ipv4(1),), 40.0)
    expired = select(down, policy=policy, identity=pod_1, now=40.0, memory=damped.memory)
    assert (expired.mode, expired.next_deadline) == (Mode.UNAVAILABLE, 160.0)


# ---------------------------------------------------------------------------------------------------
# any history: the invariants hold whatever happened before


@st.composite
def histories(draw: st.DrawFn) -> tuple[Policy, Identity, list[tuple[float, list[Endpoint]]]]:
    base = draw(endpoint_sets(min_pods=1, max_pods=6))
    policy = draw(policies())
    identity = draw(identities(base))
    steps: list[tuple[float, list[Endpoint]]] = []
    now = 0.0
    for _ in range(draw(st.integers(1, 8))):
        now += draw(st.sampled_from([0.0, 1.0, 15.0, 30.0, 60.0, 120.0]))
        view = [e for e in base if draw(st.integers(0, 9)) > 0]
        view = [replace(e, ready=draw(st.booleans())) if draw(st.booleans()) else e for e in view]
        steps.append((now, view))
    return policy, identity, steps


@given(history=histories())
def test_invariants_hold_along_any_history(
    history: tuple[Policy, Identity, list[tuple[float, list[Endpoint]]]],
) -> None:
    policy, identity, steps = history
    memory = Memory()
    for now, view in steps:
        selection = select(view, policy=policy, identity=identity, now=now, memory=memory)
        memory = selection.memory
        present = {e.address for e in view}
        assert set(selection.seeds) <= present
        assert len(selection.seeds) <= policy.count
        assert (selection.served == ()) == (selection.mode is Mode.UNAVAILABLE)
        assert selection.next_deadline is None or selection.next_deadline > now
        # No terminating record is ever a seed, damped or not.
        assert not {e.address for e in merged(view) if e.terminating} & set(selection.seeds)
        if selection.mode is Mode.DISCOVERED:
            assert set(selection.served) <= present
            assert not own_addresses(view, identity) & set(selection.served)
        # Memory only remembers seeds that are still there.
        assert set(memory.seeds) <= set(selection.seeds)


# ---------------------------------------------------------------------------------------------------
# the scenarios of docs/design.md section 2


def test_three_pods_coming_up_one_by_one_with_ordered_ready() -> None:
    policy = Policy()
    me = {n: Identity(pod_name=pod(n), pod_ip=ipv4(n + 1)) for n in range(3)}
    memory = {n: Memory() for n in range(3)}

    def ask(n: int, records: list[Endpoint], now: float) -> Selection:
        selection = select(records, policy=policy, identity=me[n], now=now, memory=memory[n])
        memory[n] = selection.memory
        return selection

    # t=0: pod 0 is created; not ready until Cassandra runs, so it seeds itself.
    view = [Endpoint(ipv4(1), pod(0), ready=False)]
    alone = ask(0, view, 0.0)
    assert (alone.mode, alone.served) == (Mode.BOOTSTRAP, (ipv4(1),))
    # t=40: pod 0 ready; OrderedReady creates pod 1, which is served pod 0.
    view = [Endpoint(ipv4(1), pod(0)), Endpoint(ipv4(2), pod(1), ready=False)]
    assert ask(0, view, 40.0).served == (ipv4(1),)
    joining = ask(1, view, 40.0)
    assert (joining.mode, joining.served) == (Mode.DISCOVERED, (ipv4(1),))
    # t=80: pod 1 ready; pod 2 created.
    view = [Endpoint(ipv4(1), pod(0)), Endpoint(ipv4(2), pod(1)), Endpoint(ipv4(3), pod(2), ready=False)]
    assert ask(0, view, 80.0).served == (ipv4(2),)
    assert ask(1, view, 80.0).served == (ipv4(1),)
    assert ask(2, view, 80.0).served == (ipv4(1), ipv4(2))
    # t=110: all ready: one seed set, each pod served the others.
    view = ready_set(range(3))
    results = {n: ask(n, view, 110.0) for n in range(3)}
    assert {r.seeds for r in results.values()} == {(ipv4(1), ipv4(2), ipv4(3))}
    assert [results[n].served for n in range(3)] == [
        (ipv4(2), ipv4(3)), (ipv4(1), ipv4(3)), (ipv4(1), ipv4(2))
    ]
    assert all(r.mode is Mode.DISCOVERED for r in results.values())


def test_ready_bootstrap_pod_is_not_put_in_restart_fallback_by_a_slow_scale_up() -> None:
    policy = Policy()
    pod_0 = Identity(pod_name=pod(0), pod_ip=ipv4(1))
    alone = select([Endpoint(ipv4(1), pod(0))], policy=policy, identity=pod_0, now=0.0)
    scaling = [Endpoint(ipv4(1), pod(0)), Endpoint(ipv4(2), pod(1), ready=False)]
    later = select(scaling, policy=policy, identity=pod_0, now=3600.0, memory=alone.memory)
    assert later.mode is Mode.BOOTSTRAP


def test_scale_from_3_to_5_keeps_seeds_and_down_to_2_replaces_terminating_ones_at_once() -> None:
    policy = Policy()
    pod_4 = Identity(pod_name=pod(4))
    three = select(ready_set(range(3)), policy=policy, identity=Identity(pod_name=pod(1)), now=0.0)
    assert three.seeds == (ipv4(1), ipv4(2), ipv4(3))
    five = select(ready_set(range(5)), policy=policy, identity=pod_4, now=10.0, memory=three.memory)
    assert (five.seeds, five.served) == (three.seeds, (ipv4(1), ipv4(2), ipv4(3)))
    # Scale to 2: the controller terminates 4, then 3, then 2; terminating seeds are not damped.
    shrinking = [*ready_set(range(2)), *(Endpoint(ipv4(n + 1), pod(n), ready=False, terminating=True)
                                       for n in (2, 3, 4))]
    pod_1 = Identity(pod_name=pod(1))
    two = select(shrinking, policy=policy, identity=pod_1, now=20.0, memory=five.memory)
    assert (two.seeds, two.served, two.next_deadline) == ((ipv4(1), ipv4(2)), (ipv4(1),), None)
    gone = select(ready_set(range(2)), policy=policy, identity=pod_1, now=30.0, memory=two.memory)
    assert outcome(gone) == outcome(select(ready_set(range(2)), policy=policy, identity=pod_1, now=30.0))


def test_six_pods_in_three_zones_are_spread_across_zones() -> None:
    zone_of = {0: "zone-a", 1: "zone-a", 2: "zone-a", 3: "zone-b", 4: "zone-b", 5: "zone-c"}
    records = ready_set(range(6), zone_of=zone_of)
    three = select(records, policy=Policy(count=3), identity=NO_ONE, now=0.0)
    assert three.seeds == (ipv4(1), ipv4(4), ipv4(6))
    four = select(records, policy=Policy(count=4), identity=NO_ONE, now=0.0)
    assert four.seeds == (ipv4(1), ipv4(2), ipv4(4), ipv4(6))
    six = select(records, policy=Policy(count=6), identity=NO_ONE, now=0.0)
    assert len(six.seeds) == 6
    # zone-a's seed (pod 0) asks: it is served the other zones' seeds.
    pod_0 = select(records, policy=Policy(count=3), identity=Identity(pod_name=pod(0)), now=0.0)
    assert pod_0.served == (ipv4(4), ipv4(6))


def test_records_without_a_zone_come_after_every_named_zone() -> None:
    records = [Endpoint(ipv4(1), pod(0)), Endpoint(ipv4(2), pod(1), "zone-b"), Endpoint(ipv4(3), pod(2), "zone-a")]
    assert select(records, policy=Policy(count=2), identity=NO_ONE, now=0.0).seeds == (ipv4(2), ipv4(3))


def test_ipv6_pods_are_served_in_canonical_form_and_ordinal_order() -> None:
    records = [Endpoint(ipv6(0x10 - n), pod(n)) for n in range(4)]
    selection = select(records, policy=Policy(), identity=Identity(pod_name=pod(1)), now=0.0)
    assert selection.seeds == ("fd00:10::10", "fd00:10::f", "fd00:10::e")
    assert selection.served == ("fd00:10::10", "fd00:10::e")


def test_records_without_ordinal_follow_ordinals_by_name_then_address_ipv4_first() -> None:
    records = [
        Endpoint("fd00::1"),
        Endpoint("10.0.0.9"),
        Endpoint("10.0.0.10"),
        Endpoint("10.0.0.1", "reaper"),
        Endpoint("10.0.0.2", "cassandra-007"),
        Endpoint("10.0.0.3", pod(7)),
    ]
    selection = select(records, policy=Policy(count=6), identity=NO_ONE, now=0.0)
    assert [c.endpoint.address for c in selection.candidates] == [
        "10.0.0.3", "10.0.0.9", "10.0.0.10", "fd00::1", "10.0.0.2", "10.0.0.1"
    ]


def test_candidates_list_every_record_once_and_mark_the_seeds() -> None:
    records = [*ready_set(range(4)), Endpoint(ipv4(9), pod(9), ready=False), Endpoint(ipv4(1), pod(0), "zone-a")]
    selection = select(records, policy=Policy(count=2), identity=NO_ONE, now=0.0)
    assert [(c.endpoint.address, c.seed) for c in selection.candidates] == [
        (ipv4(1), True), (ipv4(2), True), (ipv4(3), False), (ipv4(4), False), (ipv4(9), False)
    ]


def test_policy_rejects_a_zero_count_and_negative_durations() -> None:
    with pytest.raises(ValueError, match="count"):
        Policy(count=0)
    with pytest.raises(ValueError, match="negative"):
        Policy(flap_grace=-1.0)
    with pytest.raises(ValueError, match="negative"):
        Policy(restart_fallback_after=-1.0)

"""Relay mode's core claim, on the pure functions: select() on a relay's digest gives every caller what
select() on the whole Service gives it (served list, mode, seeds), step after step, damping and the
restart fallback included; and the digest stays a handful of records however large the Service."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Memory, Mode, Policy, select
from seedsvc.sources.relay_digest import digest, pick
from tests.strategies import endpoint_sets, identities, ipv4, pod, policies, ready_set


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[float, list[Endpoint]]]:
    """Views of one Service over time: the same pods, their flags redrawn at each step, some come and go."""
    base = draw(endpoint_sets(min_pods=1, max_pods=7, duplicates=False))
    steps = []
    now = 0.0
    for _ in range(draw(st.integers(1, 5))):
        now += draw(st.sampled_from([0.0, 1.0, 20.0, 45.0, 130.0]))
        view = []
        for e in base:
            if draw(st.integers(0, 5)) == 0:
                continue  # gone from this view
            ready = draw(st.booleans()) if draw(st.booleans()) else e.ready
            view.append(replace(e, ready=ready, terminating=e.terminating and ready is e.ready))
        steps.append((now, view))
    return steps


@settings(max_examples=300, deadline=None, report_multiple_bugs=False)
@given(st.data())
def test_a_caller_is_served_the_same_from_the_digest_as_from_the_whole_service(data: st.DataObject) -> None:
    history = data.draw(histories())
    policy = data.draw(policies())
    # Relay mode needs POD_IP: the digest carries a few records, not necessarily the caller's own.
    identity = data.draw(identities(history[0][1]).filter(lambda i: i.pod_ip is not None))
    relay_memory, direct_memory, sidecar_memory = Memory(), Memory(), Memory()
    for now, view in history:
        relay = select(view, policy=replace(policy, static_seeds=()), identity=Identity(), now=now,
                       memory=relay_memory)
        relay_memory = relay.memory
        records = digest(relay, policy.count)
        direct = select(view, policy=policy, identity=identity, now=now, memory=direct_memory)
        via_relay = select(records, policy=policy, identity=identity, now=now, memory=sidecar_memory)
        direct_memory, sidecar_memory = direct.memory, via_relay.memory
        assert (via_relay.served, via_relay.mode, via_relay.seeds) == (direct.served, direct.mode, direct.seeds)


@given(endpoint_sets(), policies())
def test_the_digest_is_at_most_three_picks_and_only_records_of_the_service(records: list[Endpoint],
                                                                           policy: Policy) -> None:
    relay = select(records, policy=policy, identity=Identity(), now=0)
    out = digest(relay, policy.count)
    assert len(out) <= 3 * (policy.count + 1)
    assert set(out) <= set(relay_candidate.endpoint for relay_candidate in relay.candidates)
    assert all(not e.terminating for e in out)


def test_a_thousand_ready_pods_give_three_records() -> None:
    records = ready_set(range(1000))
    relay = select(records, policy=Policy(count=3), identity=Identity(), now=0)
    assert digest(relay, 3) == tuple(records[:3])


def test_the_only_seed_gets_the_spare_and_the_spare_gets_the_seed() -> None:
    records = ready_set(range(1000))
    out = digest(select(records, policy=Policy(count=1), identity=Identity(), now=0), 1)
    assert out == tuple(records[:2])
    first = select(out, policy=Policy(count=1), identity=Identity(pod(0), ipv4(1)), now=0)
    second = select(out, policy=Policy(count=1), identity=Identity(pod(1), ipv4(2)), now=0)
    assert (first.served, second.served) == ((ipv4(2),), (ipv4(1),))


def test_a_spare_in_the_same_zone_is_the_next_in_that_zone() -> None:
    zones = {0: "a", 1: "b", 2: "a"}
    pool = ready_set(range(3), zone_of=zones)
    assert pick(pool, 1) == (pool[0], pool[2])
    assert pick(pool, 2) == (pool[0], pool[1])


def test_while_nothing_is_ready_the_unready_pods_travel_for_the_restart_fallback() -> None:
    records = [replace(e, ready=False) for e in ready_set(range(5))]
    out = digest(select(records, policy=Policy(count=3), identity=Identity(), now=0), 3)
    assert out == tuple(records[:3])
    # Pod 0 (the bootstrap pod) sees no eligible peer in it and seeds itself, as when it watches.
    own = select(out, policy=Policy(count=3), identity=Identity(pod(0), ipv4(1)), now=0)
    assert (own.mode, own.served) == (Mode.BOOTSTRAP, (ipv4(1),))

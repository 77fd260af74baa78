"""What a sidecar accepts from a relay: a fresh digest of valid records, and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from seedsvc.records import Endpoint, Identity
from seedsvc.seedlist import seeds_document
from seedsvc.selection import Policy, select
from seedsvc.sources.peers import PeerError
from seedsvc.sources.relay import MAX_RECORDS, parse_relay_answer
from seedsvc.sources.relay_publisher import RelayState


def answer(**changes: Any) -> bytes:
    document = {"seeds": ["10.0.0.1"], "stale": False, "reason": "", "candidates": [
        {"address": "10.0.0.1", "pod": "cassandra-0", "ordinal": 0, "zone": "a", "ready": True,
         "terminating": False, "seed": True},
        {"address": "fd00::2", "pod": "cassandra-1", "ordinal": 1, "zone": None, "ready": False,
         "terminating": False, "seed": False},
    ]}
    return json.dumps({**document, **changes}).encode()


def test_a_fresh_digest_becomes_the_records_to_select_from() -> None:
    parsed = parse_relay_answer(answer())
    assert parsed.endpoints == (Endpoint("10.0.0.1", "cassandra-0", "a", True, False),
                                Endpoint("fd00::2", "cassandra-1", None, False, False))
    assert parsed.seeds == ("10.0.0.1", "fd00::2")


@pytest.mark.parametrize(("body", "reason"), [
    (answer(stale=True), "stale"),
    (answer(stale=None), "stale"),
    (b"10.0.0.1,10.0.0.2", "bad_response"),
    (answer(candidates=[]), "bad_response"),
    (answer(candidates=[{"address": "10.0.0.1"}] * (MAX_RECORDS + 1)), "bad_response"),
    (answer(candidates=[{"address": "0.0.0.0", "ready": True, "terminating": False}]), "bad_response"),
    (answer(candidates=[{"address": "10.0.0.1", "ready": "yes", "terminating": False}]), "bad_response"),
    (answer(candidates=[{"address": "10.0.0.1", "pod": "Not_A_Pod", "ready": True, "terminating": False}]),
     "bad_response"),
    (answer(candidates=[{"address": "10.0.0.1", "zone": "a\nb", "ready": True, "terminating": False}]),
     "bad_response"),
])
def test_anything_else_is_a_failed_attempt_never_a_view(body: bytes, reason: str) -> None:
    with pytest.raises(PeerError) as caught:
        parse_relay_answer(body)
    assert caught.value.reason == reason


def test_a_relay_whose_own_source_fails_serves_a_stale_digest_that_sidecars_refuse() -> None:
    state = RelayState()
    records = [Endpoint(f"10.0.0.{n}", f"cassandra-{n - 1}") for n in range(1, 6)]
    state.publish_digest(select(records, policy=Policy(count=3), identity=Identity(), now=0), count=3,
                         source="relay", now=datetime.now(UTC))
    fresh = json.dumps(seeds_document(state.snapshot)).encode()
    assert parse_relay_answer(fresh).endpoints == tuple(records[:3])
    generation = state.snapshot.generation
    state.mark_failing(reason="unreachable", detail="API server down")
    assert state.snapshot.generation == generation and state.snapshot.stale  # long-polls wake: stale changed
    with pytest.raises(PeerError) as caught:
        parse_relay_answer(json.dumps(seeds_document(state.snapshot)).encode())
    assert caught.value.reason == "stale"


def test_a_readiness_flip_moves_the_relay_generation_even_with_the_same_addresses() -> None:
    state = RelayState()
    both_unready = [Endpoint("10.0.0.1", "cassandra-0", ready=False), Endpoint("10.0.0.2", "cassandra-1", ready=False)]
    one_ready = [both_unready[0], Endpoint("10.0.0.2", "cassandra-1")]
    generations = []
    for records in (both_unready, one_ready, one_ready):
        state.publish_digest(select(records, policy=Policy(count=3), identity=Identity(), now=0), count=3,
                             source="relay", now=datetime.now(UTC))
        assert state.snapshot.seeds == ("10.0.0.1", "10.0.0.2")
        generations.append(state.snapshot.generation)
    assert generations[1] == generations[0] + 1 and generations[2] == generations[1]

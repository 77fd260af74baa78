"""What a sidecar accepts from a relay: a fresh digest of valid records, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from seedsvc.records import Endpoint
from seedsvc.sources.peers import PeerError
from seedsvc.sources.relay import MAX_RECORDS, parse_relay_answer


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

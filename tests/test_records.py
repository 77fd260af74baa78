"""Endpoint records: ordinal parsing, address normalisation, merging of records seen in several slices."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedsvc.records import (
    Endpoint,
    Identity,
    InvalidAddress,
    merge_duplicates,
    normalize_address,
    ordinal_of,
    seed_address,
)
from tests.strategies import endpoint_sets

# ---------------------------------------------------------------------------------------------------
# ordinals: <statefulset>-<n>, https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#ordinal-index


@pytest.mark.parametrize(
    ("name", "ordinal"),
    [
        ("cassandra-0", 0),
        ("cassandra-2", 2),
        ("cassandra-10", 10),
        ("cassandra-999999999", 999_999_999),
        ("my-cassandra-dc1-7", 7),  # dashes in the StatefulSet name: the last one counts
        ("cassandra--1", 1),  # base "cassandra-": odd but a valid name and a valid ordinal
        # A hostname with dots is a DNS name: the ordinal is in its first label.
        ("cassandra-1.cassandra.default.svc.cluster.local", 1),
        ("cassandra-3.cassandra", 3),
    ],
)
def test_statefulset_names_give_their_ordinal(name: str, ordinal: int) -> None:
    assert ordinal_of(name) == ordinal


@pytest.mark.parametrize(
    "name",
    [
        None,
        "",
        "cassandra",
        "cassandra-",
        "-1",  # no StatefulSet name before the dash
        "cassandra-010",  # the controller never writes leading zeros, so this is some other name
        "cassandra-00",
        "cassandra-1a",
        "cassandra-a1",
        "cassandra-1234567890",  # more than nine digits: not an ordinal the controller makes
        "cassandra-\u0661",  # ARABIC-INDIC DIGIT ONE: \d would accept it, the regex must not
        "cassandra.default-1.svc",  # only the first label counts
    ],
)
def test_other_names_have_no_ordinal(name: str | None) -> None:
    assert ordinal_of(name) is None


@given(st.integers(0, 999_999_999), st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True))
def test_any_statefulset_pod_name_round_trips_its_ordinal(ordinal: int, base: str) -> None:
    assert ordinal_of(f"{base}-{ordinal}") == ordinal
    assert ordinal_of(f"{base}-{ordinal}.{base}.ns.svc.cluster.local") == ordinal


def test_endpoint_and_identity_ordinals_come_from_the_pod_name() -> None:
    assert Endpoint("10.0.0.1", "cassandra-4").ordinal == 4
    assert Endpoint("10.0.0.1").ordinal is None
    assert Identity(pod_name="cassandra-4").ordinal == 4
    assert Identity(pod_ip="10.0.0.1").ordinal is None


# ---------------------------------------------------------------------------------------------------
# addresses


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1\n", "10.0.0.1"),
        ("FD00:0:0:0:0:0:0:1", "fd00::1"),
        ("fd00:0000:0000::0001", "fd00::1"),
        ("[fd00::1]", "fd00::1"),
        ("[2001:DB8::a:0:0:1]", "2001:db8::a:0:0:1"),
        ("::", "::"),
    ],
)
def test_addresses_are_normalised(raw: str, canonical: str) -> None:
    assert normalize_address(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "cassandra-0",
        "cassandra-0.cassandra.default.svc.cluster.local",
        "10.0.0",
        "10.0.0.256",
        "010.0.0.1",  # leading zeros are ambiguous (octal in some parsers) and rejected
        "10.0.0.1:7000",
        "[fd00::1]:7000",
        "[fd00::1",
        "fd00::1]",
        "fd00:::1",
        "1",
        "10.0.0.1/32",
        # A zone index only means something on the host that wrote it; the result promises none.
        "fe80::1%eth0",
        "[fe80::1%2]",
    ],
)
def test_garbage_is_not_an_address(raw: str) -> None:
    with pytest.raises(InvalidAddress, match="not an IP address"):
        normalize_address(raw)


def test_invalid_address_is_a_value_error() -> None:
    # Callers that parse configuration catch ValueError.
    assert issubclass(InvalidAddress, ValueError)


@given(st.ip_addresses())
def test_normalising_is_idempotent_and_keeps_the_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    once = normalize_address(address.exploded)
    assert normalize_address(once) == once
    assert ipaddress.ip_address(once) == address
    if address.version == 6:
        assert normalize_address(f"[{address.exploded.upper()}]") == once


# ---------------------------------------------------------------------------------------------------
# merging records seen in several slices


@given(records=endpoint_sets(), data=st.data())
def test_merging_does_not_depend_on_input_order(records: list[Endpoint], data: st.DataObject) -> None:
    assert merge_duplicates(data.draw(st.permutations(records))) == merge_duplicates(records)


@given(records=endpoint_sets())
def test_merging_keeps_one_record_per_address_taken_from_the_input(records: list[Endpoint]) -> None:
    result = merge_duplicates(records)
    assert [e.address for e in result] == sorted({e.address for e in records})
    assert set(result) <= set(records)
    assert merge_duplicates(result) == result


@given(records=endpoint_sets())
def test_an_address_that_is_eligible_in_any_slice_is_eligible_after_merging(records: list[Endpoint]) -> None:
    merged = {e.address: e for e in merge_duplicates(records)}
    for address in merged:
        copies = [e for e in records if e.address == address]
        assert merged[address].eligible == any(e.eligible for e in copies)
        if not any(e.eligible for e in copies):
            # Among unusable copies, one that is not terminating is preferred.
            assert merged[address].terminating == all(e.terminating for e in copies)


def test_merge_prefers_the_ready_copy_and_then_the_one_with_more_detail() -> None:
    unready = Endpoint("10.0.0.1", "cassandra-0", "zone-a", ready=False)
    ready_without_zone = Endpoint("10.0.0.1", "cassandra-0")
    ready_with_zone = Endpoint("10.0.0.1", "cassandra-0", "zone-a")
    assert merge_duplicates([unready, ready_without_zone]) == (ready_without_zone,)
    assert merge_duplicates([ready_without_zone, ready_with_zone, unready]) == (ready_with_zone,)
    assert merge_duplicates([ready_with_zone, ready_without_zone]) == (ready_with_zone,)


def test_eligible_means_ready_and_not_terminating() -> None:
    assert Endpoint("10.0.0.1").eligible
    assert not Endpoint("10.0.0.1", ready=False).eligible
    assert not Endpoint("10.0.0.1", terminating=True).eligible


def test_identity_recognises_its_pod_by_name_or_by_address() -> None:
    mine = Endpoint("10.0.0.2", "cassandra-1")
    other = Endpoint("10.0.0.3", "cassandra-2")
    assert Identity(pod_name="cassandra-1").is_self(mine)
    assert Identity(pod_ip="10.0.0.2").is_self(mine)
    assert not Identity(pod_name="cassandra-1", pod_ip="10.0.0.2").is_self(other)
    assert not Identity().is_self(Endpoint("10.0.0.4"))
    assert not Identity(pod_name="cassandra-1").is_self(Endpoint("10.0.0.4"))


@pytest.mark.parametrize("name", ["cassandra-1\n", "cassandra-1\n.cassandra"])
def test_a_trailing_newline_is_no_ordinal(name: str) -> None:
    assert ordinal_of(name) is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("10.0.0.1", "10.0.0.1"), ("[FD00::1]", "fd00::1"), ("127.0.0.1", "127.0.0.1")]
)
def test_seed_address_keeps_unicast_addresses(raw: str, expected: str) -> None:
    assert seed_address(raw) == expected


@pytest.mark.parametrize("raw", ["0.0.0.0", "::", "224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255"])
def test_seed_address_refuses_what_no_node_can_be(raw: str) -> None:
    with pytest.raises(InvalidAddress, match="not a unicast address"):
        seed_address(raw)

"""EndpointSlice and Endpoints JSON to records: tri-state conditions, FQDN slices, malformed input."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from seedsvc.records import Endpoint
from seedsvc.sources.kubernetes.parsing import from_endpoint_slices, from_endpoints


def slice_(address_type: str, *endpoints: dict[str, Any], name: str = "cassandra-abc") -> dict[str, Any]:
    return {"metadata": {"name": name}, "addressType": address_type, "endpoints": list(endpoints)}


def pod_endpoint(ip: str, pod: str, **conditions: bool | None) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {k: v for k, v in conditions.items()},
        "targetRef": {"kind": "Pod", "name": pod, "namespace": "db"},
        "zone": "zone-a",
    }


def test_ready_unset_means_ready_and_terminating_unset_means_not() -> None:
    parsed = from_endpoint_slices([slice_("IPv4", pod_endpoint("10.0.0.1", "cassandra-0"))])
    assert parsed.endpoints == (Endpoint("10.0.0.1", "cassandra-0", "zone-a", ready=True, terminating=False),)
    assert parsed.skipped == 0


def test_conditions_are_read_as_given() -> None:
    parsed = from_endpoint_slices([
        slice_(
            "IPv4",
            pod_endpoint("10.0.0.1", "cassandra-0", ready=False),
            pod_endpoint("10.0.0.2", "cassandra-1", ready=False, terminating=True),
            pod_endpoint("10.0.0.3", "cassandra-2", ready=None, terminating=None),
        )
    ])
    assert [(e.address, e.ready, e.terminating) for e in parsed.endpoints] == [
        ("10.0.0.1", False, False),
        ("10.0.0.2", False, True),
        ("10.0.0.3", True, False),
    ]


def test_fqdn_slices_are_ignored_without_counting_as_malformed() -> None:
    parsed = from_endpoint_slices([slice_("FQDN", {"addresses": ["db.example.com"], "conditions": {}})])
    assert parsed.endpoints == ()
    assert parsed.skipped == 0


def test_ipv6_addresses_are_normalised() -> None:
    parsed = from_endpoint_slices([slice_("IPv6", pod_endpoint("fd00:0:0::0a", "cassandra-0"))])
    assert parsed.endpoints[0].address == "fd00::a"


def test_hostname_names_the_pod_when_there_is_no_pod_target_ref() -> None:
    raw = {"addresses": ["10.0.0.9"], "hostname": "cassandra-7", "targetRef": {"kind": "Node", "name": "n1"}}
    parsed = from_endpoint_slices([slice_("IPv4", raw)])
    assert parsed.endpoints[0].pod == "cassandra-7"
    assert parsed.endpoints[0].ordinal == 7


def test_malformed_records_are_skipped_and_counted_never_guessed() -> None:
    parsed = from_endpoint_slices([
        slice_(
            "IPv4",
            {"addresses": ["10.0.0.1", "not-an-ip", 7]},
            {"addresses": "10.0.0.2"},
            {"conditions": {"ready": True}},
            "garbage",  # type: ignore[arg-type]
            {"addresses": ["10.0.0.3"], "conditions": "yes"},
        ),
        {"addressType": "IPv4", "endpoints": "nope"},
        "not a slice",  # type: ignore[list-item]
    ])
    assert [e.address for e in parsed.endpoints] == ["10.0.0.1"]
    assert parsed.skipped == 8


def test_null_endpoints_is_an_empty_slice() -> None:
    assert from_endpoint_slices([{"addressType": "IPv4", "endpoints": None}]).endpoints == ()


def test_v1_endpoints_ready_and_not_ready_addresses() -> None:
    parsed = from_endpoints([
        {
            "metadata": {"name": "cassandra"},
            "subsets": [
                {
                    "addresses": [{"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "cassandra-0"}}],
                    "notReadyAddresses": [{"ip": "10.0.0.2", "hostname": "cassandra-1"}, {"ip": "bad"}],
                }
            ],
        }
    ])
    assert parsed.endpoints == (
        Endpoint("10.0.0.1", "cassandra-0", ready=True),
        Endpoint("10.0.0.2", "cassandra-1", ready=False),
    )
    assert parsed.skipped == 1


def test_v1_endpoints_without_subsets_is_empty() -> None:
    assert from_endpoints([{"metadata": {"name": "cassandra"}}]).endpoints == ()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


near_valid_slices = st.fixed_dictionaries({
    "addressType": st.sampled_from(["IPv4", "IPv6", "FQDN"]) | json_values,
    "endpoints": st.lists(
        st.fixed_dictionaries({
            "addresses": st.lists(st.sampled_from(["10.0.0.1", "fd00::1", "x"]) | json_values) | json_values,
            "conditions": st.fixed_dictionaries({"ready": json_values, "terminating": json_values}) | json_values,
            "targetRef": st.fixed_dictionaries({"kind": json_values, "name": json_values}) | json_values,
            "zone": json_values,
        })
        | json_values
    )
    | json_values,
})
near_valid_endpoints = st.fixed_dictionaries({
    "subsets": st.lists(
        st.fixed_dictionaries({
            "addresses": st.lists(st.fixed_dictionaries({"ip": st.just("10.0.0.1") | json_values}) | json_values)
            | json_values,
            "notReadyAddresses": json_values,
        })
        | json_values
    )
    | json_values
})


@given(st.lists(json_values | near_valid_slices | near_valid_endpoints, max_size=5))
def test_arbitrary_json_never_raises_and_yields_only_ip_literals(objects: list[Any]) -> None:
    for parse in (from_endpoint_slices, from_endpoints):
        parsed = parse(objects)
        for endpoint in parsed.endpoints:
            assert ":" in endpoint.address or endpoint.address.count(".") == 3

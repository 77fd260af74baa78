"""Raw EndpointSlice and Endpoints JSON to :class:`~seedsvc.records.Endpoint` records. No I/O.

Only the fields selection needs are read; anything malformed is skipped and counted rather than
guessed at, so a bad object can shrink the candidate set but never add a wrong address. Objects are
taken as ``Mapping[str, Any]`` and checked field by field, not typed as TypedDicts: a TypedDict
would claim a shape that nothing verified for JSON straight off the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seedsvc.records import Endpoint, InvalidAddress, normalize_address

# https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/#address-types
IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})


@dataclass(frozen=True, slots=True)
class Parsed:
    endpoints: tuple[Endpoint, ...]
    skipped: int


def from_endpoint_slices(slices: Iterable[Mapping[str, Any]]) -> Parsed:
    """All IP endpoints of a Service's slices; FQDN slices are ignored, not counted as malformed."""
    found: list[Endpoint] = []
    skipped = 0
    for slice_ in slices:
        if not isinstance(slice_, Mapping):
            skipped += 1
            continue
        address_type = slice_.get("addressType")
        if not isinstance(address_type, str) or address_type not in IP_ADDRESS_TYPES:
            continue
        endpoints = slice_.get("endpoints") or []
        if not isinstance(endpoints, list):
            skipped += 1
            continue
        for raw in endpoints:
            records, bad = _slice_endpoint(raw)
            found.extend(records)
            skipped += bad
    return Parsed(tuple(found), skipped)


def _slice_endpoint(raw: Any) -> tuple[list[Endpoint], int]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("addresses"), list):
        return [], 1
    conditions = raw.get("conditions") or {}
    if not isinstance(conditions, Mapping):
        return [], 1
    ready = conditions.get("ready")
    terminating = conditions.get("terminating")
    pod = _pod_name(raw.get("targetRef"), raw.get("hostname"))
    zone = raw.get("zone") if isinstance(raw.get("zone"), str) and raw.get("zone") else None
    records: list[Endpoint] = []
    bad = 0
    for address in raw["addresses"]:
        try:
            normalized = normalize_address(address) if isinstance(address, str) else None
        except InvalidAddress:
            normalized = None
        if normalized is None:
            bad += 1
            continue
        records.append(
            Endpoint(
                address=normalized,
                pod=pod,
                zone=zone,
                # An unset condition means ready / not terminating, per the EndpointConditions API.
                ready=ready is not False,
                terminating=terminating is True,
            )
        )
    return records, bad


def from_endpoints(objects: Iterable[Mapping[str, Any]]) -> Parsed:
    """Addresses of v1 Endpoints objects: ``addresses`` are ready, ``notReadyAddresses`` are not.

    v1 Endpoints carries no zone and drops terminating pods, so those fields stay unset.
    """
    found: list[Endpoint] = []
    skipped = 0
    for obj in objects:
        subsets = (obj.get("subsets") or []) if isinstance(obj, Mapping) else None
        if not isinstance(subsets, list):
            skipped += 1
            continue
        for subset in subsets:
            if not isinstance(subset, Mapping):
                skipped += 1
                continue
            for key, ready in (("addresses", True), ("notReadyAddresses", False)):
                addresses = subset.get(key) or []
                if not isinstance(addresses, list):
                    skipped += 1
                    continue
                for address in addresses:
                    record = _endpoints_address(address, ready=ready)
                    if record is None:
                        skipped += 1
                    else:
                        found.append(record)
    return Parsed(tuple(found), skipped)


def _endpoints_address(raw: Any, *, ready: bool) -> Endpoint | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("ip"), str):
        return None
    try:
        address = normalize_address(raw["ip"])
    except InvalidAddress:
        return None
    return Endpoint(address=address, pod=_pod_name(raw.get("targetRef"), raw.get("hostname")), ready=ready)


def _pod_name(target_ref: Any, hostname: Any) -> str | None:
    if isinstance(target_ref, Mapping) and target_ref.get("kind", "Pod") == "Pod":
        name = target_ref.get("name")
        if isinstance(name, str) and name:
            return name
    return hostname if isinstance(hostname, str) and hostname else None

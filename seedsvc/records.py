"""Plain records that discovery sources produce and selection consumes.

Nothing here does I/O: a source turns whatever it reads (EndpointSlices, Endpoints, DNS answers, a static
list) into :class:`Endpoint` values, and everything downstream works on those alone.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from seedsvc.options import setting

# StatefulSet pods are named <statefulset>-<ordinal>:
# https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#ordinal-index
_ORDINAL = re.compile(r"(?P<base>.+)-(?P<ordinal>0|[1-9][0-9]{0,8})")
# A pod name is a DNS subdomain (RFC 1123):
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names
_POD_NAME = re.compile(r"[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?")


class InvalidAddress(ValueError):
    """An address that is not an IPv4 or IPv6 literal."""


def normalize_address(raw: str) -> str:
    """Return the canonical text of an IP literal (IPv6 compressed, unbracketed, no zone)."""
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:
        # ipaddress accepts a zone index (fe80::1%eth0) and keeps it in the text; it only means
        # something on the host that wrote it, so it is no address to hand to other nodes.
        raise InvalidAddress(f"not an IP address (zone index): {raw!r}")
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        raise InvalidAddress(f"not an IP address: {raw!r}") from None


def seed_address(raw: str) -> str:
    """:func:`normalize_address`, refusing what no node can gossip with: the unspecified address
    (``0.0.0.0``, ``::``), multicast, and the IPv4 limited broadcast ``255.255.255.255``."""
    text = normalize_address(raw)
    ip = ipaddress.ip_address(text)
    if ip.is_unspecified or ip.is_multicast or text == "255.255.255.255":
        raise InvalidAddress(f"not a unicast address: {raw!r}")
    return text


def ordinal_of(name: str | None) -> int | None:
    """The StatefulSet ordinal in ``name`` (``cassandra-2`` -> 2), or None when there is none."""
    if not name:
        return None
    match = _ORDINAL.fullmatch(name.split(".", 1)[0])
    return int(match.group("ordinal")) if match else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One candidate address as a source saw it.

    ``ready`` is already resolved from the API's tri-state (true, false, unset means ready);
    ``pod`` is ``targetRef.name`` or the hostname, whichever the source had.
    """

    address: str
    pod: str | None = None
    zone: str | None = None
    ready: bool = True
    terminating: bool = False

    @property
    def ordinal(self) -> int | None:
        return ordinal_of(self.pod)

    @property
    def eligible(self) -> bool:
        return self.ready and not self.terminating


def parse_pod_name(text: str) -> str:
    """``text`` when it is a valid pod name; ValueError otherwise."""
    if not _POD_NAME.fullmatch(text):
        raise ValueError("not a valid pod name")
    return text


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking: the caller's own pod, so it can be left out of the list it is served.

    Also the identity settings group: the downward API gives the sidecar both values.
    """

    pod_name: str | None = setting(None, flag="--pod-name", env="POD_NAME", parse=parse_pod_name, metavar="NAME",
                                   help="this pod's name, left out of its own list; ordinal 0 may seed itself")
    pod_ip: str | None = setting(None, flag="--pod-ip", env="POD_IP", parse=normalize_address, metavar="IP",
                                 help="this pod's IP, left out of its own list")

    def is_self(self, endpoint: Endpoint) -> bool:
        if self.pod_name and endpoint.pod == self.pod_name:
            return True
        return bool(self.pod_ip) and endpoint.address == self.pod_ip

    @property
    def ordinal(self) -> int | None:
        return ordinal_of(self.pod_name)


def merge_duplicates(endpoints: list[Endpoint] | tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Collapse records that share an address (an endpoint can sit in two slices while the
    EndpointSlice controller moves it), keeping the most usable one and the most detail.

    The result does not depend on the input order.
    """
    best: dict[str, Endpoint] = {}
    for endpoint in endpoints:
        current = best.get(endpoint.address)
        best[endpoint.address] = endpoint if current is None else _preferred(current, endpoint)
    return tuple(best[address] for address in sorted(best))


def _preferred(a: Endpoint, b: Endpoint) -> Endpoint:
    # Every field takes part, so equal ranks mean equal records and the merge is order-independent.
    def rank(e: Endpoint) -> tuple[bool, bool, bool, bool, bool, str, str]:
        return (
            e.eligible, not e.terminating, e.ready, e.pod is not None, e.zone is not None, e.pod or "", e.zone or ""
        )

    return a if rank(a) >= rank(b) else b

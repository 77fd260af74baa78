"""Every name and address of the pod layer, derived from a node's index (pure: no I/O).

Everything lives in 198.18.0.0/15, the RFC 2544 benchmarking range, so nothing collides with a
private network the machine may route:

- 198.18.0.1/24 on the fabric bridge in the host's namespace: the API server, CoreDNS, the host;
- 198.18.0.(10+i) is node i's address (its namespace's end of a veth pair on the fabric);
- 198.18.(16+i).0/24 are node i's pod addresses, on the node's own CNI bridge;
- 198.19.0.0/16 holds the Service ClusterIPs (the control plane's service range).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

FABRIC_BRIDGE: Final = "seedsvc0"
FABRIC_GATEWAY: Final = "198.18.0.1"
FABRIC_PREFIX: Final = 24
SERVICE_RANGE: Final = "198.19.0.0/16"
# The first address of the range is the API server's "kubernetes" Service; this one is kube-dns's.
CLUSTER_DNS_IP: Final = "198.19.0.10"
# Prefix of every network namespace, host-side veth and cgroup the layer makes: what the janitor and
# the stale-state sweep look for.
NAME_PREFIX: Final = "seedsvc-node-"
VETH_PREFIX: Final = "seedsvc-n"
MAX_NODES: Final = 8
ZONES: Final = ("zone-a", "zone-b", "zone-c", "zone-d", "zone-e", "zone-f", "zone-g", "zone-h")


@dataclass(frozen=True)
class NodeAddressing:
    """Names and addresses of node ``index`` (1-based)."""

    index: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_NODES:
            raise ValueError(f"node index {self.index} outside 1..{MAX_NODES}")

    @property
    def name(self) -> str:
        """The Node object's name, the netns name and the cgroup directory name."""
        return f"{NAME_PREFIX}{self.index}"

    @property
    def zone(self) -> str:
        return ZONES[self.index - 1]

    @property
    def address(self) -> str:
        return f"198.18.0.{10 + self.index}"

    @property
    def host_veth(self) -> str:
        """The host end of the node's veth pair (at most 15 characters, as Linux wants)."""
        return f"{VETH_PREFIX}{self.index}"

    @property
    def pod_subnet(self) -> str:
        return f"198.18.{16 + self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        """The node's CNI bridge address: the pods' default route."""
        return str(next(ipaddress.ip_network(self.pod_subnet).hosts()))


def nodes(count: int) -> tuple[NodeAddressing, ...]:
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"node count {count} outside 1..{MAX_NODES}")
    return tuple(NodeAddressing(i) for i in range(1, count + 1))


def kubernetes_service_ip(service_range: str = SERVICE_RANGE) -> str:
    """The ClusterIP the API server gives the "kubernetes" Service: the range's first address."""
    return str(next(ipaddress.ip_network(service_range).hosts()))

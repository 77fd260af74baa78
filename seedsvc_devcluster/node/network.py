"""The pod layer's network: the fabric bridge, one namespace per node, routes and Service DNAT.

Nothing here touches a machine-wide setting: the fabric is a bridge of our own in the host's
namespace, forwarding is switched on inside the node namespaces only (a per-namespace sysctl), and the
nftables tables live inside those namespaces. The janitor (:mod:`.janitor`) undoes all of it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from seedsvc_devcluster.node.addressing import (
    CLUSTER_DNS_IP,
    FABRIC_BRIDGE,
    FABRIC_GATEWAY,
    FABRIC_PREFIX,
    NAME_PREFIX,
    VETH_PREFIX,
    NodeAddressing,
    kubernetes_service_ip,
)

COMMAND_TIMEOUT_S: Final = 30.0
SERVICES_TABLE: Final = "seedsvc-services"
FAULTS_TABLE: Final = "seedsvc-faults"


class NetworkError(RuntimeError):
    """An ip/nft command failed; the message holds the command and its stderr."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


@dataclass(frozen=True)
class ServiceRoute:
    """One ClusterIP:port the node namespaces translate to where the real server listens (kube-proxy's
    job; only the two Services the pods use, the API server's and kube-dns, are routed)."""

    cluster_ip: str
    port: int
    protocol: str
    target_ip: str
    target_port: int


def control_plane_routes(apiserver_port: int, dns_port: int) -> tuple[ServiceRoute, ...]:
    return (
        ServiceRoute(kubernetes_service_ip(), 443, "tcp", FABRIC_GATEWAY, apiserver_port),
        ServiceRoute(CLUSTER_DNS_IP, 53, "udp", FABRIC_GATEWAY, dns_port),
        ServiceRoute(CLUSTER_DNS_IP, 53, "tcp", FABRIC_GATEWAY, dns_port),
    )


def services_ruleset(routes: Sequence[ServiceRoute]) -> str:
    """An nftables table translating each ClusterIP for pods (prerouting) and the node itself (output)."""
    rules = "".join(
        f"    ip daddr {r.cluster_ip} {r.protocol} dport {r.port} dnat to {r.target_ip}:{r.target_port}\n"
        for r in routes
    )
    chains = "".join(
        f"  chain {hook} {{\n    type nat hook {hook} priority -100; policy accept;\n{rules}  }}\n"
        for hook in ("prerouting", "output")
    )
    return f"table ip {SERVICES_TABLE} {{\n{chains}}}\n"


def create_fabric() -> None:
    run(["ip", "link", "add", FABRIC_BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{FABRIC_GATEWAY}/{FABRIC_PREFIX}", "dev", FABRIC_BRIDGE])
    run(["ip", "link", "set", FABRIC_BRIDGE, "up"])


def create_node_network(node: NodeAddressing, peers: Sequence[NodeAddressing]) -> None:
    """The node's namespace on the fabric, forwarding for its pods, routes to the other nodes' pods."""
    ns = node.name
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", node.host_veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", node.host_veth, "master", FABRIC_BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{node.address}/{FABRIC_PREFIX}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "add", "default", "via", FABRIC_GATEWAY])
    for peer in peers:
        if peer != node:
            run(["ip", "-n", ns, "route", "add", peer.pod_subnet, "via", peer.address])
    # net.ipv4.ip_forward is per network namespace: this is the node's, not the machine's.
    run(in_netns(ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]))
    # The host reaches the node's pods (tests, the demo) through the node.
    run(["ip", "route", "add", node.pod_subnet, "via", node.address, "dev", FABRIC_BRIDGE])


def route_services(node: NodeAddressing, routes: Sequence[ServiceRoute]) -> None:
    """Install (or replace) the node's ClusterIP translations, once the control plane's ports are known."""
    run(in_netns(node.name, ["nft", "delete", "table", "ip", SERVICES_TABLE]), check=False)
    run(in_netns(node.name, ["nft", "-f", "-"]), stdin=services_ruleset(routes))


def remove_all() -> None:
    """Remove every namespace, veth and the bridge the layer may have made (idempotent; routes go with
    the bridge). Used by the janitor and before a start, after a run that could not clean up."""
    for name in run(["ip", "netns", "list"], check=False).split("\n"):
        ns = name.split(" ", 1)[0]
        if ns.startswith(NAME_PREFIX):
            run(["ip", "netns", "delete", ns], check=False)
    for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            link = parts[1].split("@", 1)[0]
            if link.startswith(VETH_PREFIX) or link == FABRIC_BRIDGE:
                run(["ip", "link", "delete", link], check=False)


def fabric_exists() -> bool:
    return bool(run(["ip", "-o", "link", "show", FABRIC_BRIDGE], check=False).strip())


# -- faults: a pod cut off by rules inside its own network namespace --------------------------------


def cut_ruleset(addresses: Sequence[str]) -> str:
    """Drop everything to and from ``addresses`` (output and input), as a broken link would."""
    targets = ", ".join(addresses)
    return (
        f"table inet {FAULTS_TABLE} {{\n"
        f"  chain input {{ type filter hook input priority filter; policy accept; ip saddr {{ {targets} }} drop; }}\n"
        f"  chain output {{ type filter hook output priority filter; policy accept; ip daddr {{ {targets} }} drop; }}\n"
        "}\n"
    )


def cut_pod(netns_path: str, addresses: Sequence[str]) -> None:
    """Add a partition inside the pod's namespace (``/proc/<pid>/ns/net``), replacing an earlier one."""
    heal_pod(netns_path)
    run(["nsenter", f"--net={netns_path}", "nft", "-f", "-"], stdin=cut_ruleset(addresses))


def heal_pod(netns_path: str) -> None:
    run(["nsenter", f"--net={netns_path}", "nft", "delete", "table", "inet", FAULTS_TABLE], check=False)

"""The several-datacenter settings group (DESIGN.md section 7) and the parsers of its values.

The parsers raise ValueError with the reason; :func:`seedsvc.settings.load` turns that into the one
line naming the flag or variable and the value, and checks the group against itself
(:func:`check`): peers need a datacenter, none is named like it, the bootstrap DC is one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from seedsvc import values
from seedsvc.options import setting
from seedsvc.records import InvalidAddress, normalize_address

DATACENTER_FALLBACK_ENV = "CASSANDRA_DC"
"""The classic run.sh's name for the datacenter, read when SEEDSVC_DATACENTER and --datacenter are unset."""

# Cassandra takes any string as a DC name; ours also name metrics labels, JSON keys and command-line
# pairs, so: letters, digits, '-', '_' and '.', as GossipingPropertyFileSnitch users write them.
_DATACENTER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_HOST_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def datacenter_name(value: str) -> str:
    text = value.strip()
    if not _DATACENTER.fullmatch(text):
        raise ValueError("not a valid datacenter name (letters, digits, '-', '_', '.'; at most 63)")
    return text


def peer_url(value: str) -> str:
    """An ``http://`` or ``https://`` base URL with a host, no credentials, query or fragment."""
    if not value.strip().isascii() or not value.strip().isprintable() or " " in value.strip():
        # ASCII only: urlsplit would take a port of Arabic-Indic digits; IDN hosts are written in punycode.
        raise ValueError(f"peer URL {value!r} contains a space, a control or a non-ASCII character")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"peer URL {value!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"peer URL {value!r} must not carry credentials")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(f"peer URL {value!r} must not have a query or fragment")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"peer URL {value!r} has an invalid port") from None
    if not host or not _valid_host(host):
        raise ValueError(f"peer URL {value!r} has no valid host")
    if port == 0:
        raise ValueError(f"peer URL {value!r} has an invalid port")
    return value.strip().rstrip("/")


def peer_list(value: str) -> tuple[tuple[str, str], ...]:
    """``name=URL[,name=URL...]``, names unique, kept in the order given."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep:
            raise ValueError(f"expected name=URL, got {item!r}")
        name = datacenter_name(name)
        if name in pairs:
            raise ValueError(f"peer {name!r} given twice")
        pairs[name] = peer_url(url)
    if not pairs:
        raise ValueError("no peer given")
    return tuple(pairs.items())


def _valid_host(host: str) -> bool:
    try:
        normalize_address(host)
    except InvalidAddress:
        return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.rstrip(".").split("."))
    return True


@dataclass(frozen=True, slots=True)
class FederationSettings:
    """Several datacenters: this DC's name and its peer DCs' seedsvc (unset: a single DC)."""

    datacenter: str | None = setting(
        None, flag="--datacenter", env="SEEDSVC_DATACENTER", parse=datacenter_name, metavar="NAME",
        help=f"this Cassandra datacenter's name (falls back to {DATACENTER_FALLBACK_ENV}); unset: a single datacenter")
    peers: tuple[tuple[str, str], ...] = setting(
        (), flag="--peers", env="SEEDSVC_PEERS", parse=peer_list, metavar="NAME=URL,...",
        help="peer datacenters' seedsvc base URLs: name=URL[,name=URL...]; needs --datacenter")
    peer_count: int = setting(
        2, flag="--peer-count", env="SEEDSVC_PEER_COUNT", parse=values.int_range(1, 100), metavar="N",
        help="seeds taken from each peer datacenter, in the peer's order")
    """Two: a node still reaches a peer DC while one of its seeds is down, and no node of a DC becomes
    every remote node's seed."""
    peer_ca_file: Path | None = setting(
        None, flag="--peer-ca-file", env="SEEDSVC_PEER_CA_FILE", parse=values.path, metavar="PATH",
        help="CA bundle that verifies https:// peers (default: the system CAs)")
    bootstrap_datacenter: str | None = setting(
        None, flag="--bootstrap-datacenter", env="SEEDSVC_BOOTSTRAP_DATACENTER", parse=datacenter_name,
        metavar="NAME", help="with peers: the one datacenter whose bootstrap pod may seed itself when no peer "
        "seed is known (default: none may)")
    """Unset by default: a DC added to a running cluster must wait for its peers rather than risk
    starting a second cluster; only the DC that founds the cluster is named here."""
    peer_expiry: float = setting(
        86400.0, flag="--peer-expiry", env="SEEDSVC_PEER_EXPIRY", parse=values.seconds(1, 365 * 86400),
        metavar="SECONDS", help="seconds a failing peer's last seeds stay in the list")
    """A day: a regional outage of hours keeps the other DC's seeds in every list (nodes reconnect
    as soon as it is back), while a DC that was removed for good leaves the lists by the next day."""

    @property
    def bootstrap_here(self) -> bool:
        """Whether this DC's bootstrap pod may seed itself: without peers always (one DC)."""
        return not self.peers or self.bootstrap_datacenter == self.datacenter


def check(group: FederationSettings) -> str | None:
    """The inconsistency in ``group`` as the one-line error, or None."""
    shown = ",".join(f"{name}={url}" for name, url in group.peers)
    if group.peers and group.datacenter is None:
        return f"invalid SEEDSVC_PEERS={shown!r}: needs SEEDSVC_DATACENTER (--datacenter)"
    if any(name == group.datacenter for name, _ in group.peers):
        return f"invalid SEEDSVC_PEERS={shown!r}: a peer is named like this datacenter ({group.datacenter})"
    bootstrap = group.bootstrap_datacenter
    if bootstrap is not None:
        known = sorted({name for name, _ in group.peers} | ({group.datacenter} if group.datacenter else set()))
        if bootstrap not in known:
            return (f"invalid SEEDSVC_BOOTSTRAP_DATACENTER={bootstrap!r}: neither this datacenter nor a peer "
                    f"({', '.join(known) or 'none configured'})")
    if group.peer_ca_file is not None and not group.peer_ca_file.is_file():
        return f"invalid SEEDSVC_PEER_CA_FILE={str(group.peer_ca_file)!r}: no such file"
    return None

"""Parsing and checking the several-datacenter settings (DESIGN.md section 7); no I/O but ``is_file``.

The parsers raise ValueError with the reason; :func:`seedsvc.settings.load` turns that into the one
line naming the flag or variable and the value.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from seedsvc.records import InvalidAddress, normalize_address

# Cassandra takes any string as a DC name; ours also name metrics labels, JSON keys and command-line
# pairs, so: letters, digits, '-', '_' and '.', as GossipingPropertyFileSnitch users write them.
_DATACENTER = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def datacenter_name(value: str) -> str:
    text = value.strip()
    if not _DATACENTER.match(text):
        raise ValueError("not a valid datacenter name (letters, digits, '-', '_', '.'; at most 63)")
    return text


def peer_url(value: str) -> str:
    """An ``http://`` or ``https://`` base URL with a host, no credentials, query or fragment."""
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


def peers(value: str) -> tuple[tuple[str, str], ...]:
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
        return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))
    return True

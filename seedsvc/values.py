"""Text to typed setting values: the parsers that settings declare; pure functions, no I/O.

Each parser takes the raw text of a flag or an environment variable and returns the value or raises
ValueError with a short reason; the loader adds which flag or variable and which value.

Patterns are matched whole (``fullmatch``: ``$`` would let a trailing newline through into a DNS name
or a URL), and numbers are ASCII decimal only (Python's int() and float() also take Arabic-Indic or
full-width digits, and ``1_000``).
"""

from __future__ import annotations

import ipaddress
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from seedsvc.records import InvalidAddress, normalize_address, seed_address

# A Service name is an RFC 1035 label; a namespace an RFC 1123 label:
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
# Spaces and tabs around a number are forgiven (hand-written variables); any other character is not.
_BLANKS = " \t"


def one_of(kind: Any) -> Callable[[str], Any]:
    """A parser for the members of a ``Literal[...]`` type, so the type alone lists what is allowed."""
    allowed: tuple[str, ...] = typing.get_args(kind)

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"not a valid {what}")
        return value

    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip(_BLANKS)
        if not _INTEGER.fullmatch(text):
            raise ValueError("not a whole number")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        text = value.strip(_BLANKS)
        if not _DECIMAL.fullmatch(text):  # also rules out nan, inf, hex and digit separators
            raise ValueError("not a number of seconds")
        number = float(text)
        if not low <= number <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds")
        return number

    return parse


def address(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddress:
        raise ValueError("not an IP address") from None


def seed_list(value: str) -> tuple[str, ...]:
    """Comma-separated unicast IP literals (no 0.0.0.0, ::, multicast or broadcast: no node is there)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    try:
        # Order kept, duplicates dropped: CASSANDRA_SEEDS is written by people.
        return tuple(dict.fromkeys(seed_address(item) for item in items))
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None


def path(value: str) -> Path:
    if not value.strip():
        raise ValueError("empty path")
    if not value.isprintable():
        raise ValueError("contains a control character")
    return Path(value)


def is_ip_literal(text: str) -> bool:
    try:
        normalize_address(text)
    except InvalidAddress:
        return False
    return True


def host(value: str) -> str:
    """An IP literal (normalised) or a DNS host name (lower case)."""
    value = value.strip(_BLANKS)
    try:
        return normalize_address(value)
    except InvalidAddress:
        pass
    # A name whose last label is all digits is an IP address gone wrong (999.1.1.1), not a host name:
    # top-level domains are never numeric (RFC 3696 section 2).
    if value.rpartition(".")[2].isdigit():
        raise ValueError("not a valid IP address")
    return matching(DOMAIN, "host name or IP address")(value.lower())


def host_port(value: str, default_port: int = 53) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = value.strip()
    port = default_port
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected [address]:port")
            port = int_range(1, 65535)(rest[1:])
    elif text.count(":") == 1:
        name, _, port_text = text.partition(":")
        port = int_range(1, 65535)(port_text)
    else:
        name = text
    return host(name), port


LogLevel = Literal["debug", "info", "warning", "error"]


def networks(value: str) -> tuple[str, ...]:
    """Comma-separated CIDRs, normalised and de-duplicated (``127.0.0.0/8,::1/128``)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError("expected one or more networks, e.g. 127.0.0.0/8,::1/128")
    found: list[str] = []
    for item in items:
        # ASCII only: ipaddress accepts other scripts' digits, which nobody means in a CIDR.
        if not item.isascii():
            raise ValueError(f"not a network: {item!r} is not ASCII")
        try:
            found.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise ValueError(f"not a network: {exc}") from None
    return tuple(dict.fromkeys(found))


def log_level(value: str) -> str:
    level: str = one_of(LogLevel)(value.lower())
    return level

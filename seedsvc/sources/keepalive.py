"""TCP keepalive for the API server connections: a silently dead path is noticed in seconds.

A partition drops packets without a reset. A watch is idle most of the time, so without keepalive the
sidecar would notice only when the watch's read timeout (server-side timeout plus request timeout,
about five minutes) ran out, serving a list it believes fresh all along. With probes after
``IDLE_S`` of silence, every ``INTERVAL_S``, ``PROBES`` unanswered probes end the connection: the
watch fails, the list is marked stale and discovery retries with its backoff.
"""

from __future__ import annotations

import socket
from typing import Any, Final

IDLE_S: Final = 10
INTERVAL_S: Final = 5
PROBES: Final = 3
# How long a dead path can go unnoticed on an idle connection.
DEAD_AFTER_S: Final = IDLE_S + INTERVAL_S * PROBES


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket for one getaddrinfo() entry with keepalive on (aiohttp's ``socket_factory``)."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, IDLE_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, INTERVAL_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, PROBES)
    return sock

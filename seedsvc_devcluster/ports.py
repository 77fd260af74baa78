"""Loopback ports for the local cluster's servers: free ones, remembered so no two callers share one.

The kernel picks a free port when we bind to 0; we close it again and hand the number to a child
process, so there is a short race with anything else on the machine. Within this process the race is
closed by remembering every port handed out: two callers (a control plane and CoreDNS, say) never get
the same number even if the kernel offers it twice.
"""

from __future__ import annotations

import socket
import threading
from typing import Final

LOOPBACK: Final = "127.0.0.1"
_ATTEMPTS: Final = 100

_handed_out: set[tuple[str, int]] = set()
_lock = threading.Lock()


class NoFreePort(RuntimeError):
    """The kernel kept offering ports that were taken (for the other protocol) or already handed out."""


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK, *, udp_too: bool = False) -> int:
    """A TCP port (and the same UDP port if ``udp_too``) free on ``host`` now and never handed out before."""
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
        if udp_too and not _bindable(host, port, socket.SOCK_DGRAM):
            continue
        with _lock:
            if (host, port) in _handed_out:
                continue
            _handed_out.add((host, port))
        return port
    raise NoFreePort(f"no free port on {host} after {_ATTEMPTS} tries")


def closed_port(host: str = LOOPBACK, kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A port nothing listens on (for tests of unreachable servers); remembered like :func:`free_port`."""
    return free_port(host, udp_too=kind == socket.SOCK_DGRAM)


def port_is_free(host: str, port: int) -> bool:
    """True when a TCP listener could bind ``host:port`` now (TIME_WAIT sockets do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tcp_connects(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something accepts a TCP connection on ``host:port`` within ``timeout_s``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False

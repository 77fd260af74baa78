"""API server connections probe an idle path (seedsvc/sources/keepalive.py).

The end-to-end effect, a partitioned pod's sidecar marking its list stale while its watch is idle, is
shown through a real pod network in tests/test_pod_layer.py; here, that the sockets carry the options.
"""

from __future__ import annotations

import socket

from seedsvc.sources import keepalive


def test_sockets_for_every_address_family_probe_after_ten_seconds_of_silence() -> None:
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = keepalive.keepalive_socket((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 443)))
        with sock:
            assert sock.family == family and sock.type == socket.SOCK_STREAM
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == keepalive.IDLE_S
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == keepalive.INTERVAL_S
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == keepalive.PROBES
    assert keepalive.DEAD_AFTER_S == 25

"""The real ``seedsvc serve`` under abuse, over real sockets on loopback (issue 12, docs/http-api.md "Limits").

Callers from elsewhere are simulated from other loopback addresses: each sidecar here trusts only
127.0.0.1 (``--http-trusted-networks 127.0.0.1/32``), so a client bound to 127.0.0.2 is an untrusted
pod as far as the caps are concerned, and 127.0.0.1 is the pod's own Cassandra and probes.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator

import pytest
from seedsvc_sidecar.admission import FD_RESERVE

from tests.sidecar_fixtures import Served, start

TRUSTED_ONLY_LOCALHOST = ("--http-trusted-networks", "127.0.0.1/32")
STATIC = ("--source", "static", "--seeds", "10.0.0.1,10.0.0.2")
GET_AND_CLOSE = b"GET /seeds HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
GENEROUS = 30.0  # "does not hang" bound for things that should take a second or two


def connect(served: Served, source: str = "127.0.0.2") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(GENEROUS)
    sock.connect(("127.0.0.1", served.port))
    return sock


def request(served: Served, raw: bytes, source: str = "127.0.0.2") -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it."""
    with connect(served, source) as sock:
        sock.sendall(raw)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading and dropping anything it sent)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass
    return time.monotonic() - started


def metric(served: Served, line_start: str) -> float:
    status, _, text = served.get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in /metrics")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def fd_limit(soft: int) -> Iterator[None]:
    """Children started inside inherit a soft RLIMIT_NOFILE of ``soft`` (ours is restored after)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def test_dripped_headers_are_cut_off_after_the_header_timeout(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST, "--http-header-timeout", "1", "--http-idle-timeout", "20")
    served_processes.append(served)
    with connect(served) as sock:
        sock.sendall(b"GET /seeds HTTP/1.1\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server may close while we drip
            while time.monotonic() - started < GENEROUS:
                sock.sendall(b"X")
                time.sleep(0.2)
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    if sock.recv(1) == b"":
                        break
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < GENEROUS, f"dripped headers kept the connection open {elapsed:.1f}s"
    assert metric(served, 'seedsvc_http_timeouts_total{phase="header"}') == 1


def test_silent_and_idle_connections_are_closed(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST, "--http-header-timeout", "1", "--http-idle-timeout", "2")
    served_processes.append(served)
    connected = time.monotonic()
    with connect(served) as silent, connect(served) as kept_alive:
        kept_alive.sendall(b"GET /seeds HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        closed_by_server_within(silent, GENEROUS)  # never sent a byte: the header clock
        assert 0.9 <= time.monotonic() - connected < GENEROUS
        closed_by_server_within(kept_alive, GENEROUS)  # answered, then quiet: the idle clock
        assert 1.5 <= time.monotonic() - answered < GENEROUS
    assert metric(served, 'seedsvc_http_timeouts_total{phase="header"}') == 1
    assert metric(served, 'seedsvc_http_timeouts_total{phase="idle"}') == 1


def test_at_the_connection_cap_others_get_503_and_loopback_is_still_served(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST, "--http-max-connections", "20")
    served_processes.append(served)
    held = [connect(served) for _ in range(20)]
    try:
        deadline = time.monotonic() + GENEROUS
        while metric(served, 'seedsvc_http_connections{caller="untrusted"}') < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = request(served, GET_AND_CLOSE, source="127.0.0.3")
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"\r\nRetry-After: " in answer and b"too many connections" in answer
        for path in ("/healthz", "/readyz", "/seeds"):
            assert served.get(path)[0] == 200, path
    finally:
        for sock in held:
            sock.close()
    assert metric(served, 'seedsvc_http_refused_total{reason="connections"}') == 1
    # Freed slots are usable again.
    deadline = time.monotonic() + GENEROUS
    while not request(served, GET_AND_CLOSE, "127.0.0.3").startswith(b"HTTP/1.1 200"):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_over_the_long_poll_cap_others_get_503_and_loopback_still_waits(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST, "--http-max-long-polls", "3")
    served_processes.append(served)
    poll = b"GET /seeds?wait=300 HTTP/1.1\r\nHost: x\r\n\r\n"
    waiting = [connect(served) for _ in range(3)]
    try:
        for sock in waiting:
            sock.sendall(poll)
        deadline = time.monotonic() + GENEROUS
        while metric(served, 'seedsvc_http_long_polls{caller="untrusted"}') < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        refused = request(served, poll.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n"))
        assert refused.startswith(b"HTTP/1.1 503") and b"too many waiting long-polls (3)" in refused, refused
        assert b"\r\nRetry-After: " in refused
        # A poll that needs no waiting (the client is behind) is answered, cap or not.
        behind = request(served, b"GET /seeds?wait=300&generation=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert behind.startswith(b"HTTP/1.1 200"), behind
        started = time.monotonic()
        status, _, body = served.get("/seeds?wait=1")
        assert status == 200 and body == "10.0.0.1,10.0.0.2"
        assert time.monotonic() - started >= 0.9, "the trusted long-poll waited its second"
    finally:
        for sock in waiting:
            sock.close()


def test_malformed_requests_log_one_bounded_rate_warning_without_traceback(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST)
    served_processes.append(served)
    before = len(served.log)
    for _ in range(50):
        answer = request(served, b"GET /seeds HTTP/1.1\r\nHost: x\r\nX-Evil: a\x00b\r\n\r\n")
        assert answer.split(b" ", 2)[1] == b"400", answer  # aiohttp answers these as HTTP/1.0
    assert metric(served, "seedsvc_http_malformed_requests_total") == 50
    code, _ = served.stop()
    assert code == 0
    lines = served.log[before:]
    malformed = [line for line in lines if "malformed request" in line]
    assert 1 <= len(malformed) <= 3, lines  # one per 10 s
    assert "WARNING" in malformed[0] and "127.0.0.2" in malformed[0] and "\x00" not in malformed[0]
    assert not any("Traceback" in line or " ERROR " in line for line in lines), lines


def test_wait_accepts_long_fractions_over_real_http(served_processes: list[Served]) -> None:
    served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST)
    served_processes.append(served)
    for wait in ("0.1234567891", "184.82431755846594", "300.000000000000000000"):
        status, _, body = served.get(f"/seeds?wait={wait}&generation=0")
        assert (status, body) == (200, "10.0.0.1,10.0.0.2"), (wait, body)
    status, _, body = served.get("/seeds?wait=300.0000000000000001")
    assert status == 400 and "wait='300.0000000000000001'" in body


def test_a_flood_past_the_fd_limit_neither_starves_loopback_nor_floods_the_log(
    served_processes: list[Served],
) -> None:
    """1,100 silent connections against an fd limit of 1024: the reproduction from issue 12."""
    with fd_limit(1024):
        served = start(*STATIC, *TRUSTED_ONLY_LOCALHOST, "--http-max-connections", "5000")
    served_processes.append(served)
    flood: list[socket.socket] = []
    try:
        for index in range(1100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            flood.append(sock)
            sock.bind((f"127.0.{index % 200 + 1}.{index // 200 + 2}", 0))
            sock.settimeout(GENEROUS)
            with contextlib.suppress(ConnectionError):
                sock.connect(("127.0.0.1", served.port))
                sock.sendall(b"GET /seeds HTTP/1.1\r\n")  # and never the rest
        for path in ("/healthz", "/seeds", "/readyz"):
            started = time.monotonic()
            assert served.get(path, timeout=GENEROUS)[0] == 200, path
            assert time.monotonic() - started < GENEROUS
        assert metric(served, "seedsvc_http_max_connections") == 1024 - FD_RESERVE
        assert metric(served, 'seedsvc_http_refused_total{reason="connections"}') >= 1100 - (1024 - FD_RESERVE)
        assert metric(served, "seedsvc_http_accept_errors_total") == 0
    finally:
        for sock in flood:
            sock.close()
    code, _ = served.stop()
    assert code == 0
    text = "".join(served.log)
    assert "Traceback" not in text and len(text) < 20_000, text[-3000:]


def test_memory_returns_after_a_burst_of_long_polls(served_processes: list[Served]) -> None:
    served = start(*STATIC)  # loopback is trusted by default: every poll is held, none refused
    served_processes.append(served)
    time.sleep(1)
    baseline = rss_mib(served.process.pid)
    burst = []
    try:
        for _ in range(3000):
            sock = connect(served, "127.0.0.1")
            sock.sendall(b"GET /seeds?wait=300 HTTP/1.1\r\nHost: x\r\n\r\n")
            burst.append(sock)
        deadline = time.monotonic() + GENEROUS
        while metric(served, 'seedsvc_http_long_polls{caller="trusted"}') < 3000:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        peak = rss_mib(served.process.pid)
    finally:
        for sock in burst:
            sock.close()
    assert peak - baseline > 20, (baseline, peak)  # the burst did cost memory
    deadline = time.monotonic() + 60
    while (now := rss_mib(served.process.pid)) > baseline + (peak - baseline) / 2:
        if time.monotonic() > deadline:
            pytest.fail(f"RSS {baseline:.0f} MiB before, {peak:.0f} at the peak, still {now:.0f} a minute after")
        time.sleep(0.5)


def test_accept_failures_log_one_line_per_interval_not_a_traceback_each(served_processes: list[Served]) -> None:
    """EMFILE provoked on purpose: trusted callers are not capped, so 1,100 of them exhaust an fd
    limit of 1024. asyncio then fails accept() over and over; the log must stay a few lines."""
    with fd_limit(1024):
        served = start(*STATIC)
    served_processes.append(served)
    flood: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            flood.append(sock)
            sock.settimeout(GENEROUS)
            sock.connect(("127.0.0.1", served.port))  # the kernel completes it; accept() is what fails
        time.sleep(3)  # a few of asyncio's one-second accept retries
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + GENEROUS
    while metric(served, "seedsvc_http_accept_errors_total") == 0:
        assert time.monotonic() < deadline, "no accept() failure was provoked"
        time.sleep(0.5)
    assert served.get("/healthz")[0] == 200
    code, _ = served.stop()
    assert code == 0
    text = "".join(served.log)
    assert "Traceback" not in text, text[-3000:]
    warnings = [line for line in served.log if "cannot accept connections" in line]
    assert 1 <= len(warnings) <= 2 and "Too many open files" in warnings[0], warnings

"""The pure parts of the HTTP server's limits: trust, the fd-clamped cap, log throttling, ``wait``."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from seedsvc_sidecar.admission import FD_RESERVE, Limits, connection_cap, is_trusted, refusal_bytes
from seedsvc_sidecar.logs import MalformedRequests, Throttle
from seedsvc_sidecar.serving import BadRequest, parse_wait

from seedsvc.settings import ConfigError, load


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("127.0.0.1", 5), True),
        (("127.9.8.7", 5), True),
        (("::1", 5, 0, 0), True),
        (("::ffff:127.0.0.1", 5, 0, 0), True),  # IPv4 on a dual-stack socket
        (("fe80::1%eth0", 5, 0, 1), False),
        (("10.0.0.1", 5), False),
        (("::ffff:10.0.0.1", 5, 0, 0), False),
        ("/run/seedsvc.sock", True),  # a Unix socket peer is local
        (None, True),
        (("not-an-address", 5), False),
    ],
)
def test_loopback_is_trusted_by_default_whatever_the_socket_family(peer: object, trusted: bool) -> None:
    assert is_trusted(peer, Limits.defaults().trusted) is trusted


def test_trusted_networks_come_from_the_settings() -> None:
    limits = Limits.from_settings(load({"http_trusted_networks": "127.0.0.1/32,10.1.0.0/16"}, {}))
    assert limits.trusted == (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16"))
    assert is_trusted(("10.1.2.3", 1), limits.trusted) and not is_trusted(("127.0.0.2", 1), limits.trusted)


@pytest.mark.parametrize("value", ["127.0.0.1/8", "everyone", "", "\u0661\u0662\u0667.0.0.0/8"])
def test_bad_trusted_networks_are_a_config_error_naming_the_flag(value: str) -> None:
    with pytest.raises(ConfigError, match=r"--http-trusted-networks="):
        load({"http_trusted_networks": value}, {})


@pytest.mark.parametrize(
    ("flag", "value"),
    [("http_header_timeout", "0"), ("http_idle_timeout", "nan"), ("http_max_connections", "0"),
     ("http_max_long_polls", "-1")],
)
def test_bad_limits_are_a_config_error(flag: str, value: str) -> None:
    with pytest.raises(ConfigError):
        load({flag: value}, {})


def test_the_connection_cap_keeps_descriptors_free_below_the_fd_limit() -> None:
    assert connection_cap(512, None) == 512
    assert connection_cap(512, 65536) == 512
    assert connection_cap(5000, 1024) == 1024 - FD_RESERVE
    assert connection_cap(5000, 100) == 1  # absurd limit: still serve someone


def test_a_refusal_is_a_complete_http_answer() -> None:
    raw = refusal_bytes("too many connections")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"\r\nConnection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head and b"Retry-After: " in head


def test_throttle_admits_one_report_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(interval=10.0, clock=lambda: now[0])
    assert throttle.admit("a") == 0
    assert throttle.admit("a") is None and throttle.admit("a") is None
    assert throttle.admit("b") == 0  # kinds are independent
    now[0] = 10.0
    assert throttle.admit("a") == 2


def malformed_record() -> logging.LogRecord:
    try:
        raise BadHttpMessage("Invalid header value char:\n\n  b'X: a\\x00b'\x00\n   ^")
    except BadHttpMessage as exc:
        return logging.LogRecord("p", logging.ERROR, __file__, 1, "Error handling request from %s",
                                 ("10.0.0.9",), (type(exc), exc, exc.__traceback__))


def test_a_malformed_request_record_becomes_one_warning_line() -> None:
    counted: list[None] = []
    quiet = MalformedRequests(Throttle(clock=lambda: 0.0), lambda: counted.append(None))
    record = malformed_record()
    assert quiet.filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    line = record.getMessage()
    assert "10.0.0.9" in line and "\n" not in line and "\x00" not in line and "Invalid header value char" in line
    assert not quiet.filter(malformed_record()) and len(counted) == 2  # the second is counted, not logged


@pytest.mark.parametrize("raw", ["0", "300", "0.1234567891", "184.82431755846594", "300.0000000000", "007.5",
                                 "0." + "0" * 500 + "1"])
def test_wait_accepts_any_finite_decimal_from_0_to_300(raw: str) -> None:
    assert parse_wait(raw) == float(raw)


@pytest.mark.parametrize("raw", ["300.0000000000000001", "301", "-0", "+1", "nan", "inf", "1e2", "1.", ".5", " 1",
                                 "\u0661", "\uff13", "0x1", ""])
def test_wait_rejects_everything_else_naming_the_value(raw: str) -> None:
    with pytest.raises(BadRequest, match="invalid wait="):
        parse_wait(raw)

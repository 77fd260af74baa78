"""The peer client against peers that misbehave: hangs, trickles, garbage, huge bodies, bad statuses,
refused connections, untrusted certificates.

The misbehaving peer here is a small aiohttp server written for the purpose: a real seedsvc cannot be
made to hang or send garbage on demand, which is exactly what these tests inject. The well-behaved
protocol (long-poll by generation, ETag/304) is tested against the real sidecar app in
tests/test_federation_sidecar.py. Sleeps (backoff, the hot-loop guard) go through an injected
function that records them, so the tests do not wait for them; network timeouts are real but short.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from seedsvc.sources.events import Failure
from seedsvc.sources.peers import (
    MAX_SEEDS,
    MIN_POLL_INTERVAL,
    PeerAnswer,
    PeerClient,
    PeerConfig,
    PeerError,
    PeerEvent,
    parse_peer_seeds,
)
from seedsvc_devcluster.controlplane import issue_cert, make_ca

# Generous: on a loaded 2-core machine this only says "does not hang".
DOES_NOT_HANG_S = 60.0


class Misbehaving:
    """One aiohttp app, one route per behaviour: ``<base>/<behaviour>/seeds``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.never = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{behaviour}/seeds", self.handle)
        self.app = app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query) | {"If-None-Match": request.headers.get("If-None-Match", "")})
        behaviour = request.match_info["behaviour"]
        if behaviour == "ok":
            return web.Response(text="10.2.0.1,10.2.0.2", headers={"X-Seedsvc-Generation": "7", "ETag": '"t1"'})
        if behaviour == "flaky":  # the second request fails, the others answer
            if len(self.requests) == 2:
                return web.Response(status=500, text="boom")
            return web.Response(text="10.2.0.1", headers={"X-Seedsvc-Generation": "7", "ETag": '"t1"'})
        if behaviour == "hang":
            await self.never.wait()
        if behaviour == "trickle":
            response = web.StreamResponse()
            await response.prepare(request)
            while True:
                await response.write(b"1")
                await asyncio.sleep(0.2)
        if behaviour == "garbage":
            return web.Response(text="<html>hello, world</html>")
        if behaviour == "binary":
            return web.Response(body=bytes(range(256)))
        if behaviour == "huge":
            return web.Response(body=b"10.2.0.1," * 200_000)
        if behaviour == "huge-chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(1000):
                await response.write(b"10.2.0.1," * 100)
            return response
        if behaviour == "many":
            return web.Response(text=",".join(f"10.2.{n // 250}.{n % 250 + 1}" for n in range(MAX_SEEDS + 1)))
        if behaviour == "unavailable":
            return web.Response(status=503, text="no seed list to serve: no eligible endpoint\n")
        if behaviour == "error":
            return web.Response(status=500, text="boom")
        if behaviour == "redirect":
            raise web.HTTPFound("http://192.0.2.1/seeds")
        return web.Response(status=404)


@contextlib.asynccontextmanager
async def misbehaving_peer() -> AsyncIterator[tuple[Misbehaving, str]]:
    """The misbehaving server on a free loopback port, and its base URL."""
    server = Misbehaving()
    runner = web.AppRunner(server.app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.never.set()
        await runner.cleanup()


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Misbehaving, str]]:
    async with misbehaving_peer() as running:
        yield running


class Sleeps:
    """The injected sleep: records what the client asked for, yields to the loop, returns."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


async def first_events(client: PeerClient, n: int) -> list[PeerEvent]:
    events: list[PeerEvent] = []
    updates = client.updates()
    try:
        async with asyncio.timeout(DOES_NOT_HANG_S):
            async for event in updates:
                events.append(event)
                if len(events) == n:
                    break
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
    return events


def config(base: str, behaviour: str, **changes: float) -> PeerConfig:
    timings = {"wait": 0.5, "request_timeout": 1.0, "connect_timeout": 1.0} | changes
    return PeerConfig(name="dc2", url=f"{base}/{behaviour}", **timings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("hang", "timeout"),
        ("trickle", "timeout"),
        ("garbage", "bad_response"),
        ("binary", "bad_response"),
        ("huge", "too_large"),
        ("huge-chunked", "too_large"),
        ("many", "bad_response"),
        ("unavailable", "unavailable"),
        ("error", "server_error"),
        ("redirect", "bad_status"),
    ],
)
async def test_a_misbehaving_peer_is_bounded_and_reported(peer: tuple[Misbehaving, str], behaviour: str,
                                                          reason: str) -> None:
    _, base = peer
    sleeps = Sleeps()
    events = await first_events(PeerClient(config(base, behaviour), sleep=sleeps), 1)
    assert isinstance(events[0], Failure)
    assert events[0].reason == reason, events[0].detail
    assert f"{base}/{behaviour}/seeds" in events[0].detail
    assert "\n" not in events[0].detail


async def test_an_unreachable_peer_is_retried_with_capped_jittered_backoff() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    client = PeerClient(PeerConfig("dc2", f"http://127.0.0.1:{port}", backoff_max=4.0),
                        sleep=sleeps, rng=random.Random(1))
    events = await first_events(client, 8)
    assert all(isinstance(e, Failure) and e.reason == "unreachable" for e in events)
    assert sleeps.asked[:7] == [e.retry_in for e in events[:7]]  # type: ignore[union-attr]
    assert all(0.25 <= s <= 4.0 for s in sleeps.asked)
    assert max(sleeps.asked[4:]) > 2.0  # grew towards the cap


async def test_answers_carry_the_generation_and_etag_and_an_early_unchanged_answer_is_not_repolled_at_once(
    peer: tuple[Misbehaving, str],
) -> None:
    server, base = peer
    sleeps = Sleeps()
    events = await first_events(PeerClient(config(base, "ok"), sleep=sleeps), 3)
    assert events == [PeerAnswer(("10.2.0.1", "10.2.0.2"), 7)] * 3
    first, second = server.requests[0], server.requests[1]
    assert first == {"scope": "datacenter", "If-None-Match": ""}  # no wait: learn the current list at once
    assert second["generation"] == "7" and second["If-None-Match"] == '"t1"' and second["wait"] == "0.5"
    # The second answer came at once with the same list: the client paused before the third request
    # instead of hammering the peer (the first answer is news, so no pause after it).
    assert sleeps.asked == [MIN_POLL_INTERVAL]


async def test_https_peers_are_verified_against_the_configured_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    leaf = issue_cert(ca, tmp_path, stem="peer", common_name="peer", ip_addresses=("127.0.0.1",))
    other_ca_dir = tmp_path / "other"
    other_ca_dir.mkdir()
    other_ca = make_ca(other_ca_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert, leaf.key)
    server = Misbehaving()
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    base = f"https://127.0.0.1:{runner.addresses[0][1]}/ok"
    try:
        trusted = await first_events(PeerClient(PeerConfig("dc2", base, ca_file=ca.cert), sleep=Sleeps()), 1)
        assert trusted == [PeerAnswer(("10.2.0.1", "10.2.0.2"), 7)]
        for ca_file in (other_ca.cert, None):  # another CA, and the system CAs: both refuse it
            refused = await first_events(PeerClient(PeerConfig("dc2", base, ca_file=ca_file), sleep=Sleeps()), 1)
            assert isinstance(refused[0], Failure) and refused[0].reason == "tls", refused
    finally:
        await runner.cleanup()


def test_parse_accepts_addresses_only() -> None:
    assert parse_peer_seeds(b"10.2.0.1, 10.2.0.2,fd00::0:1\n") == ("10.2.0.1", "10.2.0.2", "fd00::1")
    assert parse_peer_seeds(b"10.2.0.1,10.2.0.1") == ("10.2.0.1",)
    for bad in (b"", b"\n", b"10.2.0.1,", b"cassandra-0", b"10.2.0.1;10.2.0.2", b"fe80::1%eth0", b"[::1]x",
                "10.2.0.\u0661".encode()):
        with pytest.raises(PeerError) as raised:
            parse_peer_seeds(bad)
        assert raised.value.reason == "bad_response"


@given(st.binary(max_size=300))
def test_parse_never_lets_anything_but_addresses_through(body: bytes) -> None:
    try:
        seeds = parse_peer_seeds(body)
    except PeerError as exc:
        assert exc.reason == "bad_response"
        return
    assert 1 <= len(seeds) <= MAX_SEEDS
    assert all(s and "," not in s and s == s.strip() for s in seeds)


async def test_the_first_request_after_a_failure_does_not_wait(peer: tuple[Misbehaving, str]) -> None:
    """Else a peer that recovered with an unchanged generation would stay stale for a whole long-poll."""
    server, base = peer
    events = await first_events(PeerClient(config(base, "flaky", wait=30.0), sleep=Sleeps()), 3)
    assert isinstance(events[0], PeerAnswer) and isinstance(events[1], Failure)
    assert events[2] == PeerAnswer(("10.2.0.1",), 7)
    assert server.requests[1]["wait"] == "30"
    assert "wait" not in server.requests[2] and "generation" not in server.requests[2], server.requests[2]

"""Two or three federated sidecars in one event loop, talking over real HTTP on loopback.

Each DC is the real sidecar app (make_app + the federated discovery + metrics) on its own port; only
the local source is fed by the test (a queue of views), so a DC's pods can turn ready, unready or
move on demand without a control plane. The same cases on real control planes, with real `seedsvc
serve` processes, are in tests/test_multidc_sidecar.py. Waits are bounded generously ("does not
hang"); no assertion depends on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from seedsvc_sidecar.health import Health
from seedsvc_sidecar.metrics import Metrics
from seedsvc_sidecar.serving import make_app

from seedsvc.api import watch_seeds
from seedsvc.federated_discovery import build_federation
from seedsvc.records import Endpoint
from seedsvc.seedlist import SeedList
from seedsvc.selection import Mode
from seedsvc.settings import Settings
from seedsvc.sources.events import Failure, View
from seedsvc.sources.peers import PeerAnswer, PeerClient, PeerConfig
from seedsvc.state import SeedState
from tests.discovery_run import wait_for_state
from tests.test_discovery import QueueSource
from tests.test_federation_peers import misbehaving_peer

BOUND = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def pods(dc: str, ready: Iterable[int], unready: Iterable[int] = ()) -> View:
    """DC ``dcN``'s pods ``cassandra-<i>`` at 127.0.N.<i+1>."""
    n = int(dc[-1])
    records = [Endpoint(f"127.0.{n}.{i + 1}", f"cassandra-{i}") for i in ready]
    records += [Endpoint(f"127.0.{n}.{i + 1}", f"cassandra-{i}", ready=False) for i in unready]
    return View(tuple(records))


@dataclass
class Datacenter:
    name: str
    port: int
    source: QueueSource
    served: SeedState
    scope: SeedState
    metrics: Metrics
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@contextlib.asynccontextmanager
async def datacenter(
    name: str,
    port: int,
    *,
    peers: dict[str, int | str],
    bootstrap: str | None = "dc1",
    pod: int = 1,
    restored: SeedList | None = None,
    **settings: float,
) -> AsyncIterator[Datacenter]:
    """One DC's sidecar (the caller is pod ``cassandra-<pod>``) serving on ``port``."""
    n = int(name[-1])
    config = Settings.build(
        datacenter=name, peers=tuple((peer, p if isinstance(p, str) else f"http://127.0.0.1:{p}")
                                      for peer, p in peers.items()),
        bootstrap_datacenter=bootstrap, pod_name=f"cassandra-{pod}", pod_ip=f"127.0.{n}.{pod + 1}",
        **({"connect_timeout": 1.0, "request_timeout": 2.0, "backoff_max": 0.5} | settings),
    )
    served, scope, source = SeedState(), SeedState(), QueueSource()
    if restored is not None:
        served.restore(restored)
    metrics = Metrics(served, source=source.name)
    app = make_app(state=served, health=Health(), metrics=metrics, scope_state=scope)
    federation = build_federation(config, served=served, scope=scope, observer=metrics, source=source)

    async def run(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(federation.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run)
    dc = Datacenter(name, port, source, served, scope, metrics)
    await start(dc, app)
    try:
        yield dc
    finally:
        await dc.stop()


async def start(dc: Datacenter, app: web.Application) -> None:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", dc.port).start()
    dc.runner = runner


async def wait_served(dc: Datacenter, *seeds: str) -> None:
    await wait_for_state(dc.served, lambda s: s.seeds == seeds, f"{dc.name} served {','.join(seeds)}", BOUND)


def serving(dc: Datacenter) -> SeedList:
    """What the DC serves now (a call, so mypy does not narrow it across awaits)."""
    return dc.served.snapshot


def status(snapshot: SeedList, name: str) -> tuple[tuple[str, ...], bool]:
    entry = next(dc for dc in snapshot.datacenters if dc.name == name)
    return entry.seeds, entry.stale


async def test_each_dc_serves_its_local_list_then_the_other_dcs_seeds_and_changes_cross_by_long_poll() -> None:
    p1, p2 = free_port(), free_port()
    async with datacenter("dc1", p1, peers={"dc2": p2}, pod=1) as dc1, \
            datacenter("dc2", p2, peers={"dc1": p1}, pod=0) as dc2:
        await dc1.source.feed(pods("dc1", range(4)))
        await dc2.source.feed(pods("dc2", range(3)))
        # dc1 pod 1: seeds {0,1,2} less itself, then dc2's first two (peer-count 2).
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        await wait_served(dc2, "127.0.2.2", "127.0.2.3", "127.0.1.1", "127.0.1.2")
        assert await dc1.get("/seeds?scope=datacenter") == (200, "127.0.1.1,127.0.1.2,127.0.1.3")
        # dc2's pod 0 moves to a new address: dc1 learns it through its long-poll, no restart.
        moved = View((Endpoint("127.0.2.9", "cassandra-0"), *pods("dc2", [1, 2]).endpoints))
        await dc2.source.feed(moved)
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.2.9", "127.0.2.2")
        code, body = await dc1.get("/seeds?format=json")
        assert code == 200 and '"datacenter":"dc1"' in body and '"dc2":{"seeds":["127.0.2.9"' in body


async def test_a_peer_dc_going_down_leaves_its_seeds_stale_and_never_delays_the_local_answer() -> None:
    p1, p2 = free_port(), free_port()
    async with datacenter("dc1", p1, peers={"dc2": p2}, pod=1) as dc1, \
            datacenter("dc2", p2, peers={"dc1": p1}) as dc2:
        await dc1.source.feed(pods("dc1", range(3)))
        await dc2.source.feed(pods("dc2", range(3)))
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        await dc2.stop()
        await wait_for_state(dc1.served, lambda s: status(s, "dc2") == (("127.0.2.1", "127.0.2.2", "127.0.2.3"), True),
                             "dc2 stale", BOUND)
        assert serving(dc1).seeds == ("127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        assert not serving(dc1).stale  # the local part is fresh; staleness is per DC
        code, readyz = await dc1.get("/readyz")
        assert code == 200 and '"failing_peers":{"dc2":"unreachable: ' in readyz
        _, metrics = await dc1.get("/metrics")
        assert 'seedsvc_peer_stale{datacenter="dc2"} 1.0' in metrics
        assert 'seedsvc_peer_seeds{datacenter="dc2"} 3.0' in metrics
        assert 'seedsvc_peer_errors_total{datacenter="dc2",reason="unreachable"}' in metrics
        # A local change is served at once while the peer is down.
        # The composer publishes right after the local loop, never after the failing peer.
        await dc1.source.feed(pods("dc1", [0, 2, 3]))
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.1.4", "127.0.2.1", "127.0.2.2")


async def test_a_stale_peers_seeds_expire() -> None:
    p1, p2 = free_port(), free_port()
    async with datacenter("dc1", p1, peers={"dc2": p2}, pod=1, peer_expiry=1.0) as dc1, \
            datacenter("dc2", p2, peers={"dc1": p1}) as dc2:
        await dc1.source.feed(pods("dc1", range(3)))
        await dc2.source.feed(pods("dc2", range(2)))
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        await dc2.stop()
        await wait_served(dc1, "127.0.1.1", "127.0.1.3")
        assert status(serving(dc1), "dc2") == ((), True)


async def test_a_new_dc_whose_peers_are_unreachable_waits_then_joins_once_a_peer_answers() -> None:
    p1, p2 = free_port(), free_port()
    async with datacenter("dc2", p2, peers={"dc1": p1}, pod=0, restart_fallback_after=0.2) as dc2:
        # The new DC's two pods exist, none ready: pod 0 may not seed itself (dc1 is the bootstrap DC),
        # and the restart fallback is not for pods that never ran (they would form an island).
        await dc2.source.feed(pods("dc2", [], unready=[0, 1]))
        await asyncio.sleep(1.0)  # past the 0.2 s fallback: nothing may change
        code, body = await dc2.get("/seeds")
        assert code == 503 and "no peer datacenter seed known" in body, body
        assert serving(dc2).mode is Mode.UNAVAILABLE
        async with datacenter("dc1", p1, peers={"dc2": p2}, pod=0) as dc1:
            await dc1.source.feed(pods("dc1", range(3)))
            await wait_served(dc2, "127.0.1.1", "127.0.1.2")
            assert serving(dc2).mode is Mode.PEERS
            # dc2's own seed set is what rule 8 makes of it (its unready pods, past the fallback): peers
            # may gossip towards them, while dc2's own pods are never served them.
            assert await dc2.get("/seeds?scope=datacenter") == (200, "127.0.2.1,127.0.2.2")
            assert serving(dc2).seeds == ("127.0.1.1", "127.0.1.2")


async def test_a_dc_that_ran_before_reforms_on_its_own_while_every_peer_is_down() -> None:
    p1, p2 = free_port(), free_port()
    restored = SeedList(seeds=("127.0.2.2", "127.0.1.1"), generation=5)
    async with datacenter("dc2", p2, peers={"dc1": p1}, pod=0, restored=restored,
                          restart_fallback_after=0.2) as dc2:
        await dc2.source.feed(pods("dc2", [], unready=[0, 1]))
        # Whole-DC restart: after the fallback, pod 0 (the bootstrap ordinal, state file restored) is
        # served itself, then pod 1 (unready, rule 8), and re-forms (regional recovery, docs/multi-dc.md).
        await wait_served(dc2, "127.0.2.1", "127.0.2.2")
        assert serving(dc2).mode is Mode.BOOTSTRAP
        await dc2.source.feed(pods("dc2", [0, 1]))
        await wait_served(dc2, "127.0.2.2")
        assert await dc2.get("/seeds?scope=datacenter") == (200, "127.0.2.1,127.0.2.2")


async def test_the_peer_client_long_polls_the_real_scope_view_with_generation_and_etag() -> None:
    p1 = free_port()
    async with datacenter("dc1", p1, peers={}, bootstrap=None) as dc1:
        await dc1.source.feed(pods("dc1", range(2)))
        client = PeerClient(PeerConfig("dc1", dc1.url, wait=30))
        updates = client.updates()
        try:
            async with asyncio.timeout(BOUND):
                first = await anext(updates)
                assert first == PeerAnswer(("127.0.1.1", "127.0.1.2"), dc1.scope.snapshot.generation)
                waiting = asyncio.ensure_future(anext(updates))
                await asyncio.sleep(0.3)
                assert not waiting.done()  # a long-poll, not a loop
                await dc1.source.feed(pods("dc1", range(3)))
                second = await waiting
                assert second.seeds == ("127.0.1.1", "127.0.1.2", "127.0.1.3")  # type: ignore[union-attr]
        finally:
            await updates.aclose()  # type: ignore[attr-defined]


async def test_a_local_source_failure_marks_the_list_stale_with_peers_intact() -> None:
    p1, p2 = free_port(), free_port()
    async with datacenter("dc1", p1, peers={"dc2": p2}, pod=1) as dc1, \
            datacenter("dc2", p2, peers={"dc1": p1}) as dc2:
        await dc1.source.feed(pods("dc1", range(3)))
        await dc2.source.feed(pods("dc2", range(2)))
        await wait_served(dc1, "127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        await dc1.source.feed(Failure("forbidden", "endpointslices is forbidden"))
        await wait_for_state(dc1.served, lambda s: s.stale, "dc1 stale", BOUND)
        assert serving(dc1).seeds == ("127.0.1.1", "127.0.1.3", "127.0.2.1", "127.0.2.2")
        assert serving(dc1).last_error_reason == "forbidden"
        assert status(serving(dc1), "dc1")[1] is True
        assert status(serving(dc1), "dc2")[1] is False


@pytest.mark.parametrize(("behaviour", "reason"), [("hang", "timeout"), ("trickle", "timeout"),
                                                   ("garbage", "bad_response"), ("huge", "too_large")])
async def test_a_misbehaving_peer_is_reported_and_never_touches_the_local_list(behaviour: str, reason: str) -> None:
    p1 = free_port()
    async with misbehaving_peer() as (_, base), \
            datacenter("dc1", p1, peers={"dc2": f"{base}/{behaviour}"}, pod=1, request_timeout=1.0) as dc1:
        await dc1.source.feed(pods("dc1", range(3)))
        await wait_served(dc1, "127.0.1.1", "127.0.1.3")
        await wait_for_state(dc1.served, lambda s: any(dc.name == "dc2" and dc.stale and reason in (dc.reason or "")
                                                       for dc in s.datacenters), f"dc2 failing with {reason}", BOUND)
        assert serving(dc1).seeds == ("127.0.1.1", "127.0.1.3")
        await dc1.source.feed(pods("dc1", [0, 1, 3]))  # local changes are still served meanwhile
        await wait_served(dc1, "127.0.1.1", "127.0.1.4")


async def test_watch_seeds_of_the_python_api_composes_peers_like_the_sidecar() -> None:
    p1 = free_port()
    async with datacenter("dc1", p1, peers={}, bootstrap=None) as dc1:
        await dc1.source.feed(pods("dc1", range(3)))
        # dc2 from the environment as a user would configure it: static local seeds, dc1 as peer.
        settings = Settings.build(source="static", seeds=("127.0.2.1", "127.0.2.2"), pod_ip="127.0.2.1",
                                  datacenter="dc2", peers=(("dc1", dc1.url),), backoff_max=0.5)
        updates = watch_seeds(settings)
        try:
            async with asyncio.timeout(BOUND):
                async for update in updates:
                    if update.seeds == ("127.0.2.2", "127.0.1.1", "127.0.1.2"):
                        assert update.datacenter == "dc2"
                        break
        finally:
            await updates.aclose()

"""The discovery loop: source events in, SeedState (and the state file) out, timers for grace periods.

The source here is an in-memory test double: an async generator fed from an asyncio.Queue. That is
enough for what is under test (the loop around select()); the real sources (Kubernetes watch, DNS) have
their own tests against a real API server and a real DNS server.

Time: Discovery takes an injectable ``clock`` for select(), but it waits for the next deadline with a
real asyncio timeout computed from that clock. So the fake-clock tests move the clock and let the next
event (a Restart or Failure, never a View) give the loop its turn, and the tests that show a deadline
firing with no event at all use the real monotonic clock with policy durations of a fraction of a
second and bounded waits (no sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from seedsvc_sidecar.health import Health
from seedsvc_sidecar.metrics import Metrics
from seedsvc_sidecar.serving import make_app

from seedsvc.discovery import Discovery
from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Mode, Policy, Selection
from seedsvc.sources.events import Failure, Restart, SourceEvent, View
from seedsvc.state import SeedState, StateFile
from tests.strategies import ipv4, pod, ready_set

BOUND = 30.0  # seconds any wait in these tests may take before the test fails: "does not hang", on any load
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class QueueSource:
    """Yields what the test puts in its queue. ``feed`` returns once the loop has handled the event
    and asked for the next one, so a test never has to guess how long handling takes."""

    name = "memory"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SourceEvent] = asyncio.Queue(maxsize=8)
        self.closed = False

    async def updates(self) -> AsyncIterator[SourceEvent]:
        try:
            while True:
                event = await self.queue.get()
                yield event
                self.queue.task_done()
        finally:
            self.closed = True

    async def feed(self, *events: SourceEvent) -> None:
        for event in events:
            await self.queue.put(event)
        await asyncio.wait_for(self.queue.join(), BOUND)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingObserver:
    events: list[tuple[str, object]] = field(default_factory=list)

    def view(self, source: str, view: View) -> None:
        self.events.append(("view", view))

    def failure(self, source: str, failure: Failure) -> None:
        self.events.append(("failure", failure))

    def restart(self, source: str, restart: Restart) -> None:
        self.events.append(("restart", restart))

    def selected(self, selection: Selection, *, changed: bool) -> None:
        self.events.append(("selected", (selection.mode, selection.served, changed)))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


@dataclass
class Harness:
    source: QueueSource
    state: SeedState
    discovery: Discovery
    observer: RecordingObserver


def make(
    *,
    policy: Policy | None = None,
    identity: Identity | None = None,
    clock: FakeClock | None = None,
    state_file: Path | None = None,
) -> Harness:
    source = QueueSource()
    state = SeedState()
    observer = RecordingObserver()
    discovery = Discovery(
        source=source,
        policy=policy or Policy(),
        identity=identity or Identity(pod_name=pod(4)),
        state=state,
        observer=observer,
        state_file=StateFile(state_file) if state_file else None,
        clock=clock or time.monotonic,
        wall=lambda: T0 + timedelta(seconds=clock.now if clock else 0),
    )
    return Harness(source, state, discovery, observer)


@contextlib.asynccontextmanager
async def running(harness: Harness) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(harness.discovery.run())
    try:
        await settle()
        yield task
        assert not task.done(), "the loop must run until cancelled"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle() -> None:
    """Let ready callbacks and woken tasks run: turns of the event loop, no wall-clock delay."""
    for _ in range(10):
        await asyncio.sleep(0)


def view(*endpoints: Endpoint) -> View:
    return View(tuple(endpoints))


def addresses(*ordinals: int) -> tuple[str, ...]:
    return tuple(ipv4(n + 1) for n in ordinals)


THREE = ready_set(range(3))
ZERO_DOWN = [Endpoint(ipv4(1), pod(0), ready=False), *ready_set([1, 2, 3])]


# ---------------------------------------------------------------------------------------------------


async def test_views_update_the_state() -> None:
    h = make()
    async with running(h):
        await h.source.feed(view(*THREE))
        snap = h.state.snapshot
        assert (snap.seeds, snap.generation, snap.source, snap.mode) == (addresses(0, 1, 2), 1, "memory",
                                                                          Mode.DISCOVERED)
        assert snap.last_success is not None
        await h.source.feed(view(*ready_set([1, 2, 3]), Endpoint(ipv4(1), pod(0), terminating=True)))
        assert (h.state.snapshot.seeds, h.state.snapshot.generation) == (addresses(1, 2, 3), 2)
        await h.source.feed(view(*ready_set([3, 2, 1])))  # same records, other order: nothing changes
        assert h.state.snapshot.generation == 2
    assert h.observer.kinds() == ["view", "selected"] * 3
    assert [e[1] for e in h.observer.events if e[0] == "selected"][-1] == (
        Mode.DISCOVERED, addresses(1, 2, 3), False
    )


async def test_static_seeds_are_served_before_the_first_view() -> None:
    h = make(policy=Policy(static_seeds=(ipv4(100), ipv4(101))), identity=Identity(pod_name=pod(4)))
    async with running(h):
        snap = h.state.snapshot
        assert (snap.seeds, snap.mode, snap.source) == ((ipv4(100), ipv4(101)), Mode.STATIC, "static")
        await h.source.feed(view(*THREE))
        assert (h.state.snapshot.seeds, h.state.snapshot.mode) == (addresses(0, 1, 2), Mode.DISCOVERED)


async def test_without_static_seeds_nothing_is_served_before_the_first_view() -> None:
    h = make()
    async with running(h):
        await h.source.feed(Restart("closed"))
        assert not h.state.snapshot.servable
        assert h.state.snapshot.generation == 0


async def test_failures_keep_the_last_list_and_mark_it_stale() -> None:
    h = make()
    async with running(h):
        await h.source.feed(view(*THREE))
        await h.source.feed(Failure("forbidden", "endpointslices.discovery.k8s.io is forbidden"))
        snap = h.state.snapshot
        assert (snap.seeds, snap.stale, snap.last_error_reason) == (addresses(0, 1, 2), True, "forbidden")
        await h.source.feed(Failure("timeout", "read timed out"), Restart("expired"))
        assert h.state.snapshot.stale
        assert h.state.snapshot.last_error == "read timed out"
        await h.source.feed(view(*THREE))
        assert not h.state.snapshot.stale
        assert h.state.snapshot.last_error is None
        assert h.state.snapshot.generation == 1


async def test_grace_expiry_reselects_without_any_new_event() -> None:
    # Real time: the loop's own timer must fire; 0.2 s of grace, bounded waits.
    h = make(policy=Policy(flap_grace=0.2))
    async with running(h):
        await h.source.feed(view(*ready_set(range(4))))
        went_unready = time.monotonic()
        await h.source.feed(view(*ZERO_DOWN))
        assert h.state.snapshot.seeds == addresses(0, 1, 2)  # damped: pod 0 keeps its place
        snap = await h.state.wait_past(1, timeout=BOUND)
        assert time.monotonic() - went_unready >= 0.2
        assert snap.seeds == addresses(1, 2, 3)
        assert not h.state.snapshot.stale


async def test_restart_fallback_comes_due_without_any_new_event(caplog: pytest.LogCaptureFixture) -> None:
    # Real time again: 0.2 s until unready peers become candidates.
    h = make(policy=Policy(restart_fallback_after=0.2), identity=Identity(pod_name=pod(3)))
    unready = [Endpoint(ipv4(n + 1), pod(n), ready=False) for n in (1, 2, 3)]
    with caplog.at_level(logging.WARNING, logger="seedsvc.discovery"):
        async with running(h):
            await h.source.feed(view(*unready))
            assert h.state.snapshot.mode is Mode.UNAVAILABLE
            snap = await h.state.wait_past(h.state.snapshot.generation, timeout=BOUND)
            assert (snap.mode, snap.seeds) == (Mode.RESTART_FALLBACK, addresses(1, 2))
    assert "whole-cluster restart" in caplog.text


async def test_grace_expiry_is_handled_exactly_at_the_deadline_with_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    h = make(policy=Policy(flap_grace=30.0), clock=clock, state_file=tmp_path / "seeds.json")
    async with running(h):
        await h.source.feed(view(*ready_set(range(4))))
        clock.now += 10
        await h.source.feed(view(*ZERO_DOWN))  # pod 0 unready at 1010: replaced at 1040
        clock.now = 1039.999
        await h.source.feed(Restart("expired"))
        await settle()
        assert (h.state.snapshot.seeds, h.state.snapshot.generation) == (addresses(0, 1, 2), 1)

        clock.now = 1040.0
        await h.source.feed(Restart("expired"))  # only gives the loop a turn; it carries no records
        snap = await h.state.wait_past(1, timeout=BOUND)
        assert snap.seeds == addresses(1, 2, 3)
        await h.source.feed(Restart("expired"))  # a barrier: the loop has finished that round
        saved = StateFile(tmp_path / "seeds.json").load()
        assert saved is not None
        assert saved.seeds == addresses(1, 2, 3), "a change made by the timer must reach the state file"


async def test_grace_expiry_while_the_source_fails_keeps_the_list_stale() -> None:
    clock = FakeClock()
    h = make(policy=Policy(flap_grace=30.0), clock=clock)
    async with running(h):
        await h.source.feed(view(*ready_set(range(4))))
        await h.source.feed(view(*ZERO_DOWN))
        last_success = h.state.snapshot.last_success
        await h.source.feed(Failure("unreachable", "connection refused"))
        clock.now += 60  # the grace period ends while the API server is unreachable
        await h.source.feed(Failure("unreachable", "connection refused"))  # the source retries
        await settle()
        snap = h.state.snapshot
        assert snap.stale, "nothing was discovered: the list is still the last known one"
        assert (snap.last_error_reason, snap.last_error) == ("unreachable", "connection refused")
        assert snap.last_success == last_success

        await h.source.feed(view(*ZERO_DOWN))  # the source is back with the same view
        assert not h.state.snapshot.stale
        assert h.state.snapshot.seeds == addresses(1, 2, 3)  # the expired grace applies at once


async def test_state_file_is_written_when_the_list_changes(tmp_path: Path) -> None:
    path = tmp_path / "state" / "seeds.json"
    h = make(state_file=path)
    async with running(h):
        await h.source.feed(view(*THREE))
        saved = StateFile(path).load()
        assert saved is not None
        assert (saved.seeds, saved.generation, saved.source) == (addresses(0, 1, 2), 1, "memory")
        written = os.stat(path)

        await h.source.feed(view(*reversed(THREE)), Failure("timeout", "read timed out"), Restart("closed"))
        assert os.stat(path).st_ino == written.st_ino  # nothing changed, nothing written

        await h.source.feed(view(*ready_set([1, 2, 3])))
        saved = StateFile(path).load()
        assert saved is not None
        assert (saved.seeds, saved.generation) == (addresses(1, 2, 3), 2)
        assert sorted(os.listdir(path.parent)) == ["seeds.json"]


async def test_unwritable_state_file_is_logged_and_serving_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "seeds.json"
    path.mkdir()  # a directory where the file should be: os.replace fails
    h = make(state_file=path)
    with caplog.at_level(logging.ERROR, logger="seedsvc.discovery"):
        async with running(h):
            await h.source.feed(view(*THREE))
            assert h.state.snapshot.seeds == addresses(0, 1, 2)
    assert "cannot write state file" in caplog.text


async def test_cancellation_leaves_no_tasks_behind() -> None:
    h = make(policy=Policy(flap_grace=3600.0))
    task = asyncio.create_task(h.discovery.run())
    await h.source.feed(view(*ready_set(range(4))))
    await h.source.feed(view(*ZERO_DOWN))  # a pending deadline an hour away
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)
    await settle()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert h.source.closed


async def test_cancellation_before_the_first_event_leaves_no_tasks_behind() -> None:
    h = make()
    task = asyncio.create_task(h.discovery.run())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)
    await settle()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert h.source.closed


# ---------------------------------------------------------------------------------------------------
# "never an empty 200" on the real path: a good list, then every pod unready or terminating


@pytest.mark.parametrize(
    ("case", "policy", "identity", "answer"),
    [
        # Rule 7: a pod that may not seed itself has no list: 503 until a peer is eligible.
        ("other-pod", Policy(flap_grace=0.2), Identity(pod_name=pod(4)), (503, "")),
        # CASSANDRA_SEEDS is the static fallback for that pod.
        ("static", Policy(flap_grace=0.2, static_seeds=(ipv4(100),)), Identity(pod_name=pod(4)), (200, ipv4(100))),
        # The bootstrap pod seeds itself.
        ("bootstrap", Policy(flap_grace=0.2), Identity(pod_name=pod(0), pod_ip=ipv4(1)), (200, ipv4(1))),
    ],
)
@pytest.mark.parametrize("how", ["unready", "terminating"])
async def test_a_list_followed_by_no_eligible_pod_is_never_an_empty_200(
    tmp_path: Path, case: str, policy: Policy, identity: Identity, answer: tuple[int, str], how: str
) -> None:
    """docs/design.md section 3 ("503 + Retry-After while no list can be served, never an empty 200") with
    rules 5 and 7: the list outlives unready seeds by the grace period (terminating ones not at all),
    then the caller gets what rule 7 leaves it, over real HTTP, and a long-poll woken by the change
    gets the same; the state file keeps the last list that could be served."""
    state_file = tmp_path / "seeds.json"
    h = make(policy=policy, identity=identity, state_file=state_file)
    metrics = Metrics(h.state, source=h.source.name)
    app = make_app(state=h.state, health=Health(), metrics=metrics)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client, running(h):
        await h.source.feed(view(*ready_set(range(4))))
        good = await client.get("/seeds")
        good_list = await good.text()
        assert good.status == 200 and good_list
        generation = good.headers["X-Seedsvc-Generation"]
        waiting = asyncio.create_task(
            client.get("/seeds", params={"wait": "300", "generation": generation, "format": "json"})
        )
        await settle()
        gone = [Endpoint(ipv4(n + 1), pod(n), ready=False, terminating=how == "terminating") for n in range(4)]
        await h.source.feed(view(*gone))
        if how == "unready":
            # Damped: the seeds keep their places for the grace period; the timer ends it.
            assert h.state.snapshot.seeds != ()
        woken = await asyncio.wait_for(waiting, BOUND)
        status, expected = answer
        assert woken.status == status
        for response in (woken, await client.get("/seeds"), await client.get("/seeds", params={"format": "json"})):
            body = await response.text()
            assert response.status == status, body
            assert body, "never an empty body"
            if status == 503:
                assert response.headers["Retry-After"] == "2"
                assert "no eligible peer" in body
            elif response.content_type == "application/json":
                assert json.loads(body)["seeds"] == [expected]
            else:
                assert body == expected
        assert (await client.get("/readyz")).status == (503 if status == 503 else 200)
        await h.source.feed(Restart("expired"))  # a barrier: the loop has finished the timer's round
        saved = StateFile(state_file).load()
        assert saved is not None
        assert ",".join(saved.seeds) == (good_list if status == 503 else expected)

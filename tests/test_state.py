"""SeedState (generation, staleness, change notification) and StateFile (atomic save, strict load)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedsvc.records import Endpoint
from seedsvc.seedlist import SeedList, seeds_document
from seedsvc.selection import Candidate, Memory, Mode, Selection
from seedsvc.sources.events import Failure, Restart
from seedsvc.state import MAX_STATE_FILE_BYTES, STATE_FILE_VERSION, SeedState, StateFile, StateFileError
from tests.strategies import endpoint_sets, ready_set
from tests.test_discovery import THREE, addresses, make, running, view

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def selection(*served: str, mode: Mode = Mode.DISCOVERED, reason: str = "") -> Selection:
    candidates = tuple(Candidate(Endpoint(a, f"cassandra-{i}"), True) for i, a in enumerate(served))
    return Selection(served, served, mode, reason, candidates, Memory())


async def settle() -> None:
    """Let woken tasks run: a few turns of the event loop, no wall-clock delay."""
    for _ in range(5):
        await asyncio.sleep(0)


def unavailable() -> Selection:
    return Selection((), (), Mode.UNAVAILABLE, "no eligible peer yet", (), Memory())


# ---------------------------------------------------------------------------------------------------
# SeedState


def test_generation_moves_only_when_the_served_list_changes() -> None:
    state = SeedState()
    assert state.publish(selection("10.0.0.1", "10.0.0.2"), source="kubernetes", now=T0)
    assert state.snapshot.generation == 1
    assert state.snapshot.updated_at == T0

    later = T0 + timedelta(seconds=5)
    same_list_other_mode = selection("10.0.0.1", "10.0.0.2", mode=Mode.RESTART_FALLBACK)
    assert not state.publish(same_list_other_mode, source="kubernetes", now=later)
    assert state.snapshot.generation == 1
    assert state.snapshot.updated_at == T0  # the list is as old as it was
    assert state.snapshot.last_success == later
    assert state.snapshot.mode is Mode.RESTART_FALLBACK

    assert state.publish(selection("10.0.0.1"), source="kubernetes", now=later)
    assert (state.snapshot.generation, state.snapshot.updated_at) == (2, later)
    # The same list in another order is another answer: Cassandra's seed order is what the rules made.
    assert state.publish(selection("10.0.0.3", "10.0.0.1"), source="kubernetes", now=later)
    assert state.publish(selection("10.0.0.1", "10.0.0.3"), source="kubernetes", now=later)
    assert state.snapshot.generation == 4


def test_failure_marks_a_servable_list_stale_and_keeps_it() -> None:
    state = SeedState()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    state.mark_failing(reason="forbidden", detail="endpointslices is forbidden")
    snap = state.snapshot
    assert (snap.seeds, snap.generation, snap.stale) == (("10.0.0.1",), 1, True)
    assert (snap.last_error_reason, snap.last_error) == ("forbidden", "endpointslices is forbidden")
    assert snap.last_success == T0

    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0 + timedelta(seconds=1))
    assert not state.snapshot.stale
    assert state.snapshot.last_error is None
    assert state.snapshot.generation == 1


@pytest.mark.parametrize("before", ["nothing yet", "unavailable"])
def test_state_without_a_servable_list_is_never_stale(before: str) -> None:
    state = SeedState()
    if before == "unavailable":
        state.publish(unavailable(), source="kubernetes", now=T0)
    state.mark_failing(reason="unreachable", detail="connection refused")
    assert not state.snapshot.servable
    assert not state.snapshot.stale
    assert state.snapshot.last_error == "connection refused"


def test_static_fallback_is_served_only_while_nothing_else_is() -> None:
    state = SeedState()
    static = selection("10.0.0.9", mode=Mode.STATIC)
    assert not state.publish_fallback(unavailable(), source="static")
    assert state.snapshot.generation == 0
    assert state.publish_fallback(static, source="static")
    assert (state.snapshot.seeds, state.snapshot.mode, state.snapshot.generation) == (("10.0.0.9",), Mode.STATIC, 1)

    restored = SeedState()
    restored.restore(SeedList(seeds=("10.0.0.1",), generation=7, updated_at=T0, source="kubernetes"))
    assert not restored.publish_fallback(static, source="static")
    assert restored.snapshot.seeds == ("10.0.0.1",)


def test_restored_list_is_stale_until_the_source_answers() -> None:
    state = SeedState()
    state.restore(SeedList(seeds=("10.0.0.1",), generation=7, updated_at=T0, source="kubernetes"))
    assert (state.snapshot.stale, state.snapshot.generation) == (True, 7)
    assert "state file" in state.snapshot.reason
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    assert (state.snapshot.stale, state.snapshot.generation) == (False, 7)
    state.publish(selection("10.0.0.2"), source="kubernetes", now=T0)
    assert state.snapshot.generation == 8


async def test_wait_past_wakes_when_the_generation_moves() -> None:
    state = SeedState()
    waiter = asyncio.create_task(state.wait_past(0, timeout=10))
    await settle()
    assert not waiter.done()
    state.mark_failing(reason="timeout", detail="no answer")  # notifies nothing: no list yet
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    snap = await asyncio.wait_for(waiter, timeout=1)
    assert (snap.generation, snap.seeds) == (1, ("10.0.0.1",))


async def test_wait_past_ignores_changes_that_keep_the_generation() -> None:
    state = SeedState()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    waiter = asyncio.create_task(state.wait_past(1, timeout=10))
    await settle()
    state.mark_failing(reason="timeout", detail="no answer")  # stale flips: waiters wake, re-check
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)  # not stale any more, same list
    await settle()
    assert not waiter.done()
    state.publish(selection("10.0.0.2"), source="kubernetes", now=T0)
    assert (await asyncio.wait_for(waiter, timeout=1)).generation == 2


async def test_wait_past_returns_the_current_snapshot_after_the_timeout() -> None:
    state = SeedState()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    snap = await state.wait_past(1, timeout=0.02)
    assert loop.time() - started >= 0.019  # asyncio may fire a timer up to its clock resolution early
    assert (snap.generation, snap.seeds) == (1, ("10.0.0.1",))


async def test_wait_past_returns_at_once_when_already_past() -> None:
    state = SeedState()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    snap = await asyncio.wait_for(state.wait_past(0, timeout=3600), timeout=1)
    assert snap.generation == 1


async def test_changes_yields_the_current_list_then_each_different_one() -> None:
    state = SeedState()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)
    changes = state.changes()
    seen = [await asyncio.wait_for(anext(changes), timeout=1)]
    nxt = asyncio.ensure_future(anext(changes))
    await settle()
    state.publish(selection("10.0.0.1"), source="kubernetes", now=T0)  # same list: nothing to yield
    await settle()
    state.publish(unavailable(), source="kubernetes", now=T0)  # nothing servable: not yielded
    await settle()
    assert not nxt.done()
    state.publish(selection("10.0.0.2"), source="kubernetes", now=T0)
    seen.append(await asyncio.wait_for(nxt, timeout=1))
    await changes.aclose()  # type: ignore[attr-defined]
    assert [s.seeds for s in seen] == [("10.0.0.1",), ("10.0.0.2",)]
    assert [s.generation for s in seen] == [1, 3]


# ---------------------------------------------------------------------------------------------------
# StateFile


def snapshot(*served: str, generation: int = 3) -> SeedList:
    candidates = (
        Candidate(Endpoint(served[0], "cassandra-0", "zone-a"), True),
        Candidate(Endpoint("fd00::9", None, None, ready=False, terminating=True), False),
    )
    return SeedList(seeds=served, generation=generation, updated_at=T0, source="kubernetes",
                    mode=Mode.DISCOVERED, candidates=candidates)


def saved_fields(snap: SeedList) -> tuple[object, ...]:
    return (snap.seeds, snap.generation, snap.updated_at, snap.source, snap.mode, snap.candidates)


def test_saved_snapshot_loads_back_with_the_same_list(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "nested" / "dir" / "seeds.json")
    original = snapshot("10.0.0.1", "fd00::2")
    file.save(original)
    loaded = file.load()
    assert loaded is not None
    assert saved_fields(loaded) == saved_fields(original)
    assert json.loads(file.path.read_text())["version"] == STATE_FILE_VERSION
    assert os.listdir(file.path.parent) == ["seeds.json"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=endpoint_sets(min_pods=1, duplicates=False),
    generation=st.integers(0, 2**53),
    updated_at=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    mode=st.sampled_from([m for m in Mode if m is not Mode.UNAVAILABLE]),
)
def test_any_snapshot_round_trips(
    tmp_path: Path, records: list[Endpoint], generation: int, updated_at: datetime | None, mode: Mode
) -> None:
    original = SeedList(
        seeds=tuple(e.address for e in records[:3]),
        generation=generation,
        updated_at=updated_at,
        source="dns",
        mode=mode,
        candidates=tuple(Candidate(e, i % 2 == 0) for i, e in enumerate(records)),
    )
    file = StateFile(tmp_path / "seeds.json")
    file.save(original)
    loaded = file.load()
    assert loaded is not None
    # The file holds the /seeds document, whose times are RFC 3339 to the millisecond.
    to_ms = None if updated_at is None else updated_at.replace(microsecond=updated_at.microsecond // 1000 * 1000)
    assert saved_fields(loaded) == saved_fields(replace(original, updated_at=to_ms))


def test_the_state_file_is_the_seeds_document_with_a_version(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "seeds.json")
    original = snapshot("10.0.0.1", "fd00::2")
    file.save(original)
    assert json.loads(file.path.read_text()) == {"version": STATE_FILE_VERSION, **seeds_document(original)}


def test_saving_replaces_the_previous_file(tmp_path: Path) -> None:
    file = StateFile(tmp_path / "seeds.json")
    file.save(snapshot("10.0.0.1", generation=1))
    file.save(snapshot("10.0.0.2", generation=2))
    loaded = file.load()
    assert loaded is not None
    assert (loaded.seeds, loaded.generation) == (("10.0.0.2",), 2)
    assert os.listdir(tmp_path) == ["seeds.json"]


@pytest.mark.parametrize("failing", ["json.dump", "os.fsync", "os.replace"])
def test_crash_mid_write_leaves_the_old_file_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Fault injection: the step named by ``failing`` raises part-way through a save, as a full disk,
    # an I/O error or a kill would; everything else is the real filesystem.
    file = StateFile(tmp_path / "seeds.json")
    file.save(snapshot("10.0.0.1", generation=1))
    before = file.path.read_bytes()

    def half_written_dump(document: object, handle: object, **kwargs: object) -> None:
        handle.write('{"version": 1, "seeds": ["10.0.0.2"')  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    if failing == "json.dump":
        monkeypatch.setattr("seedsvc.state.json.dump", half_written_dump)
    elif failing == "os.fsync":
        monkeypatch.setattr("seedsvc.state.os.fsync", broken)
    else:
        monkeypatch.setattr("seedsvc.state.os.replace", broken)

    with pytest.raises(OSError, match=r"No space left|Input/output"):
        file.save(snapshot("10.0.0.2", generation=2))
    monkeypatch.undo()

    assert file.path.read_bytes() == before
    assert os.listdir(tmp_path) == ["seeds.json"]
    loaded = file.load()
    assert loaded is not None
    assert loaded.seeds == ("10.0.0.1",)


def test_missing_file_loads_as_none(tmp_path: Path) -> None:
    assert StateFile(tmp_path / "absent.json").load() is None
    assert StateFile(tmp_path / "no" / "such" / "dir.json").load() is None


def valid_document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "version": STATE_FILE_VERSION, "seeds": ["10.0.0.1"], "generation": 1, "source": "kubernetes",
        "mode": "discovered", "updated_at": T0.isoformat(), "candidates": [],
    }
    document.update(changes)
    return document


UNUSABLE: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"  \n",
    "truncated": b'{"version": 1, "seeds": ["10.0.0.1"',
    "not an object": b"[1, 2, 3]",
    "null": b"null",
    "not utf-8": b"\xff\xfe\x00\x01garbage",
    "wrong version": json.dumps(valid_document(version=2)).encode(),
    "no version": json.dumps({k: v for k, v in valid_document().items() if k != "version"}).encode(),
    "empty seed list": json.dumps(valid_document(seeds=[])).encode(),
    "seed is no address": json.dumps(valid_document(seeds=["cassandra-0"])).encode(),
    "seeds not a list of strings": json.dumps(valid_document(seeds=[1])).encode(),
    "no generation": json.dumps({k: v for k, v in valid_document().items() if k != "generation"}).encode(),
    "generation not a number": json.dumps(valid_document(generation="x")).encode(),
    "unknown mode": json.dumps(valid_document(mode="guessing")).encode(),
    "bad timestamp": json.dumps(valid_document(updated_at="yesterday")).encode(),
    "candidate not an object": json.dumps(valid_document(candidates=["10.0.0.1"])).encode(),
    "candidate without address": json.dumps(valid_document(candidates=[{"pod": "cassandra-0"}])).encode(),
    # Found by trying: each of these crashed the sidecar before it listened, or made /seeds answer 500.
    "generation Infinity": b'{"version": 1, "seeds": ["10.0.0.1"], "generation": Infinity}',
    "generation 1e400": b'{"version": 1, "seeds": ["10.0.0.1"], "generation": 1e400}',
    "generation NaN": b'{"version": 1, "seeds": ["10.0.0.1"], "generation": NaN}',
    "generation a float": json.dumps(valid_document(generation=1.5)).encode(),
    "generation true": json.dumps(valid_document(generation=True)).encode(),
    "generation negative": json.dumps(valid_document(generation=-1)).encode(),
    "generation beyond a Java long": json.dumps(valid_document(generation=2**63)).encode(),
    "200,000 nested arrays": b"[" * 200_000 + b"]" * 200_000,
    "200,000 nested objects": b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
    "version true": json.dumps(valid_document(version=True)).encode(),
    "candidate pod a number": json.dumps(valid_document(candidates=[{"address": "10.0.0.1", "pod": 5}])).encode(),
    "candidate zone a list": json.dumps(valid_document(candidates=[{"address": "10.0.0.1", "zone": []}])).encode(),
    "candidate ready a string": json.dumps(
        valid_document(candidates=[{"address": "10.0.0.1", "ready": "no"}])).encode(),
    "candidate pod with a newline": json.dumps(
        valid_document(candidates=[{"address": "10.0.0.1", "pod": "a\nb"}])).encode(),
    "candidate address a number": json.dumps(valid_document(candidates=[{"address": 167772161}])).encode(),
    "source a number": json.dumps(valid_document(source=5)).encode(),
    "mode a list": json.dumps(valid_document(mode=[])).encode(),
    "updated_at a number": json.dumps(valid_document(updated_at=1764230400)).encode(),
    "updated_at beyond year 9999 in UTC": json.dumps(valid_document(updated_at="9999-12-31T23:59:59-23:59")).encode(),
    "updated_at before year 1 in UTC": json.dumps(valid_document(updated_at="0001-01-01T00:00:00+23:59")).encode(),
    "seeds not a list": json.dumps(valid_document(seeds="10.0.0.1")).encode(),
    "seed 0.0.0.0": json.dumps(valid_document(seeds=["0.0.0.0"])).encode(),
    "seed ::": json.dumps(valid_document(seeds=["::"])).encode(),
    "seed multicast": json.dumps(valid_document(seeds=["224.0.0.1"])).encode(),
    "seed broadcast": json.dumps(valid_document(seeds=["255.255.255.255"])).encode(),
    "lone surrogate": b'{"version": 1, "seeds": ["10.0.0.1"], "generation": 1, "source": "\\ud800"}',
}


@pytest.mark.parametrize("content", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_unusable_file_raises_state_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "seeds.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=re.escape(str(path))):
        StateFile(path).load()


def test_larger_than_any_document_we_write_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "seeds.json"
    padding = " " * MAX_STATE_FILE_BYTES
    path.write_text(json.dumps(valid_document()) + padding)
    with pytest.raises(StateFileError, match="larger than"):
        StateFile(path).load()


def test_valid_hand_written_document_loads(tmp_path: Path) -> None:
    # The control for the table above: only the named field is wrong in each of those.
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(valid_document(seeds=["[FD00::0001]"])))
    loaded = StateFile(path).load()
    assert loaded is not None
    assert (loaded.seeds, loaded.generation, loaded.updated_at) == (("fd00::1",), 1, T0)


def test_unreadable_path_raises_state_file_error(tmp_path: Path) -> None:
    (tmp_path / "seeds.json").mkdir()
    with pytest.raises(StateFileError, match="cannot read"):
        StateFile(tmp_path / "seeds.json").load()


# ---------------------------------------------------------------------------------------------------
# Failed writes are retried (a real Discovery loop; the fault is real too, see blocked_state_file)


def blocked_state_file(tmp_path: Path) -> tuple[Path, Path]:
    """A state-file path whose directory is a regular file, so every write fails in mkdir.

    A real filesystem fault rather than a fake; a read-only directory would not do, because the
    tests may run as root, which writes there anyway. Deleting the blocker ends the fault.
    """
    blocker = tmp_path / "state"
    blocker.write_text("")
    return blocker, blocker / "seeds.json"


async def saved_list(path: Path, *, timeout: float = 30.0) -> SeedList:
    """The list in the state file once there is one; generous bound: only "it comes" is asserted."""
    async with asyncio.timeout(timeout):
        while (loaded := StateFile(path).load()) is None:  # noqa: ASYNC110 - a file has no event to await
            await asyncio.sleep(0.02)
    return loaded


async def test_a_failed_write_is_retried_on_a_timer_without_a_new_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker, path = blocked_state_file(tmp_path)
    h = make(state_file=path)
    h.discovery.save_retry = 0.05
    with caplog.at_level(logging.INFO, logger="seedsvc.discovery"):
        async with running(h):
            await h.source.feed(view(*THREE))
            assert h.state.snapshot.seeds == addresses(0, 1, 2), "serving does not wait for the disk"
            await asyncio.sleep(0.3)  # several retries fail meanwhile
            assert not path.exists()
            blocker.unlink()  # the fault ends; the source has nothing new to say
            assert (await saved_list(path)).seeds == addresses(0, 1, 2)
            await h.source.feed(Restart("closed"))  # a barrier: the loop has finished that write
    assert caplog.text.count("cannot write state file") == 1, "one line per new error, not per retry"
    assert "written after earlier failures" in caplog.text


async def test_a_failed_write_is_retried_at_the_next_change(tmp_path: Path) -> None:
    blocker, path = blocked_state_file(tmp_path)
    h = make(state_file=path)
    h.discovery.save_retry = 3600.0  # the timer cannot be what writes it
    async with running(h):
        await h.source.feed(view(*THREE))
        blocker.unlink()
        await h.source.feed(view(*ready_set([1, 2, 3])))
        assert StateFile(path).load() == SeedList(
            seeds=addresses(1, 2, 3), generation=2, updated_at=T0, source="memory", mode=Mode.DISCOVERED,
            candidates=h.state.snapshot.candidates,
        )


async def test_a_failed_write_is_retried_while_the_source_fails(tmp_path: Path) -> None:
    blocker, path = blocked_state_file(tmp_path)
    h = make(state_file=path)
    h.discovery.save_retry = 0.05
    async with running(h):
        await h.source.feed(view(*THREE), Failure("unreachable", "connection refused"))
        assert h.state.snapshot.stale
        blocker.unlink()
        assert (await saved_list(path)).seeds == addresses(0, 1, 2)

"""SeedState: the list being served, its generation and staleness, and the state file behind it.

The state is the one place the discovery loop writes and the HTTP layer and the Python API read. A
change of the served list bumps the generation and wakes every waiter (long-polls, ``watch_seeds``);
the state file lets a restarted sidecar serve the last known list at once, marked stale, before its
source has answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seedsvc.federation import DatacenterStatus
from seedsvc.records import Endpoint, normalize_address
from seedsvc.selection import Candidate, Mode, Selection

STATE_FILE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What is being served right now; immutable, so readers never see a half-made update."""

    served: tuple[str, ...] = ()
    generation: int = 0
    updated_at: datetime | None = None
    source: str = "none"
    mode: Mode = Mode.UNAVAILABLE
    reason: str = "discovery has not produced a view yet"
    stale: bool = False
    candidates: tuple[Candidate, ...] = ()
    last_error: str | None = None
    last_error_reason: str | None = None
    last_success: datetime | None = None
    datacenter: str | None = None
    """Several DCs only (DESIGN.md section 7): the own DC's name."""
    datacenters: tuple[DatacenterStatus, ...] = ()
    """Several DCs only: what each DC (the own one included) contributes, and whether it is stale."""

    @property
    def servable(self) -> bool:
        """True when there is a non-empty list to serve; an empty 200 is never an answer."""
        return bool(self.served)


@dataclass(slots=True)
class SeedState:
    """Mutable holder of the current :class:`Snapshot`, with change notification."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(
        self,
        selection: Selection,
        *,
        source: str,
        now: datetime,
        datacenter: str | None = None,
        datacenters: tuple[DatacenterStatus, ...] = (),
    ) -> bool:
        """Install the outcome of a successful discovery round; True when the served list changed."""
        old = self.snapshot
        changed = selection.served != old.served
        self.snapshot = Snapshot(
            served=selection.served,
            generation=old.generation + 1 if changed else old.generation,
            updated_at=now if changed or old.updated_at is None else old.updated_at,
            source=source,
            mode=selection.mode,
            reason=selection.reason,
            stale=False,
            candidates=selection.candidates,
            last_error=None,
            last_error_reason=None,
            last_success=now,
            datacenter=datacenter,
            datacenters=datacenters,
        )
        if changed or old.stale:
            self._notify()
        return changed

    def publish_fallback(self, selection: Selection, *, source: str) -> bool:
        """Serve what select() offers without any view (static seeds) while discovery has never
        succeeded; an already servable list (e.g. from the state file) is kept instead."""
        if self.snapshot.servable or not selection.served:
            return False
        old = self.snapshot
        self.snapshot = replace(
            old,
            served=selection.served,
            generation=old.generation + 1,
            updated_at=datetime.now(UTC),
            source=source,
            mode=selection.mode,
            reason=selection.reason,
        )
        self._notify()
        return True

    def mark_failing(self, *, reason: str, detail: str) -> None:
        """Discovery failed: keep the last list, flag it stale, remember why."""
        old = self.snapshot
        self.snapshot = replace(old, stale=old.servable, last_error=detail, last_error_reason=reason)
        if old.stale != self.snapshot.stale:
            self._notify()

    def restore(self, snapshot: Snapshot) -> None:
        """Serve a list loaded from the state file until the source answers; stale by definition."""
        self.snapshot = replace(snapshot, stale=True, reason="restored from the state file")
        self._notify()

    async def wait_past(self, generation: int, timeout: float) -> Snapshot:
        """Return once the generation is past ``generation``, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.snapshot.generation <= generation:
                    await self._changed.wait()
        return self.snapshot

    async def changes(self) -> AsyncIterator[Snapshot]:
        """Yield the current snapshot, then every later one whose served list differs."""
        last: tuple[str, ...] | None = None
        while True:
            current = self.snapshot
            if current.served and current.served != last:
                last = current.served
                yield current
            await self.wait_past(current.generation, timeout=3600)

    def _notify(self) -> None:
        # Swap in a fresh Event so waiters woken now cannot miss the next change.
        event, self._changed = self._changed, asyncio.Event()
        event.set()


class StateFileError(Exception):
    """The state file exists but cannot be used; the sidecar starts without it and says so."""


@dataclass(frozen=True, slots=True)
class StateFile:
    """The last served list on disk, replaced atomically (write, fsync, rename, fsync dir)."""

    path: Path

    def save(self, snapshot: Snapshot) -> None:
        document = {
            "version": STATE_FILE_VERSION,
            "seeds": list(snapshot.served),
            "generation": snapshot.generation,
            "source": snapshot.source,
            "mode": str(snapshot.mode),
            "updated_at": snapshot.updated_at.isoformat() if snapshot.updated_at else None,
            "candidates": [candidate_json(c) for c in snapshot.candidates],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)

    def load(self) -> Snapshot | None:
        """The saved snapshot, None when there is no file; StateFileError when it is unusable."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"cannot read {self.path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise StateFileError(f"cannot use {self.path}: {exc}") from None
        try:
            document = json.loads(text)
            if document.get("version") != STATE_FILE_VERSION:
                raise ValueError(f"unknown version {document.get('version')!r}")
            served = tuple(normalize_address(s) for s in document["seeds"])
            if not served:
                raise ValueError("empty seed list")
            updated = document.get("updated_at")
            return Snapshot(
                served=served,
                generation=int(document["generation"]),
                updated_at=datetime.fromisoformat(updated) if updated else None,
                source=str(document.get("source", "state-file")),
                mode=Mode(document.get("mode", Mode.DISCOVERED)),
                candidates=tuple(_candidate_from_json(c) for c in document.get("candidates", [])),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(f"cannot use {self.path}: {exc}") from None


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    e = candidate.endpoint
    return {
        "address": e.address,
        "pod": e.pod,
        "ordinal": e.ordinal,
        "zone": e.zone,
        "ready": e.ready,
        "terminating": e.terminating,
        "seed": candidate.seed,
    }


def _candidate_from_json(data: dict[str, Any]) -> Candidate:
    endpoint = Endpoint(
        address=normalize_address(data["address"]),
        pod=data.get("pod"),
        zone=data.get("zone"),
        ready=bool(data.get("ready", True)),
        terminating=bool(data.get("terminating", False)),
    )
    return Candidate(endpoint, bool(data.get("seed", False)))



def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is; not every filesystem allows this.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

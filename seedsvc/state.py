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
from typing import NoReturn

from seedsvc.federation import DatacenterStatus
from seedsvc.seedlist import SeedList, from_seeds_document, seeds_document
from seedsvc.selection import Selection

STATE_FILE_VERSION = 1
MAX_STATE_FILE_BYTES = 16 * 2**20
"""Far above the document of a 5,000-endpoint Service (about 0.7 MB); anything larger was not
written by us, and is not read into memory."""


@dataclass(slots=True)
class SeedState:
    """Mutable holder of the current :class:`SeedList` (``snapshot``), with change notification."""

    snapshot: SeedList = field(default_factory=SeedList)
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
        changed = selection.served != old.seeds
        self.snapshot = SeedList(
            seeds=selection.served,
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
            seeds=selection.served,
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

    def restore(self, snapshot: SeedList) -> None:
        """Serve a list loaded from the state file until the source answers; stale by definition."""
        self.snapshot = replace(snapshot, stale=True, reason="restored from the state file")
        self._notify()

    async def wait_past(self, generation: int, timeout: float) -> SeedList:
        """Return once the generation is past ``generation``, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.snapshot.generation <= generation:
                    await self._changed.wait()
        return self.snapshot

    async def changes(self) -> AsyncIterator[SeedList]:
        """Yield the current snapshot, then every later one whose served list differs."""
        last: tuple[str, ...] | None = None
        while True:
            current = self.snapshot
            if current.seeds and current.seeds != last:
                last = current.seeds
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

    def save(self, snapshot: SeedList) -> None:
        document = {"version": STATE_FILE_VERSION, **seeds_document(snapshot)}
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

    def load(self) -> SeedList | None:
        """The saved list, None when there is no file; StateFileError when it is unusable."""
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_STATE_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            if len(data) > MAX_STATE_FILE_BYTES:
                raise ValueError(f"larger than {MAX_STATE_FILE_BYTES} bytes")
            document = json.loads(data.decode(), parse_constant=_no_constant)
            fields = document if isinstance(document, dict) else {}
            version = fields.get("version")
            if type(version) is not int or version != STATE_FILE_VERSION:
                raise ValueError(f"unknown version {version!r:.40}")
            return from_seeds_document(document)
        except RecursionError:
            raise StateFileError(f"cannot use {self.path}: nested too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise StateFileError(f"cannot use {self.path}: {exc}") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is; not every filesystem allows this.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

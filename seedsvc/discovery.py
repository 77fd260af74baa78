"""The discovery loop: source events in, selections out, SeedState updated.

This is the imperative shell around :func:`seedsvc.selection.select`: it owns the clock, the
selection memory and the timer that re-runs selection when a grace period or the restart fallback
expires, and it tells an observer (metrics, logs) what happened. It does no network I/O itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Memory, Mode, Policy, Selection, earliest, select
from seedsvc.sources.events import Failure, Restart, Source, View
from seedsvc.state import SeedState, StateFile

log = logging.getLogger("seedsvc.discovery")

SAVE_RETRY = 10.0
"""Seconds between retries of a failed state-file write: a full disk or a remounted volume usually
recovers in seconds to minutes, and a write costs one small file and two fsyncs."""


class Observer(Protocol):
    """Hooks for metrics; every method must be cheap and must not raise."""

    def view(self, source: str, view: View) -> None: ...
    def failure(self, source: str, failure: Failure) -> None: ...
    def restart(self, source: str, restart: Restart) -> None: ...
    def selected(self, selection: Selection, *, changed: bool) -> None: ...


class NullObserver:
    def view(self, source: str, view: View) -> None:
        pass

    def failure(self, source: str, failure: Failure) -> None:
        pass

    def restart(self, source: str, restart: Restart) -> None:
        pass

    def selected(self, selection: Selection, *, changed: bool) -> None:
        pass


@dataclass(slots=True)
class Discovery:
    """Runs one source forever and keeps ``state`` current."""

    source: Source
    policy: Policy
    identity: Identity
    state: SeedState
    observer: Observer = field(default_factory=NullObserver)
    state_file: StateFile | None = None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    save_retry: float = SAVE_RETRY
    _memory: Memory = field(default_factory=Memory)
    _endpoints: tuple[Endpoint, ...] | None = None
    _last_mode: Mode | None = None
    _memory_deadline: float | None = None
    _failing: bool = False
    _save_retry_at: float | None = None
    _save_error: str | None = None

    async def run(self) -> None:
        """Consume the source until cancelled. Never returns on its own."""
        self._apply_static_fallback()
        events = self.source.updates()
        pending_next: asyncio.Task[object] | None = None
        try:
            while True:
                # While the source fails the last list stays as it was (stale); the first view after
                # recovery re-runs select(), which then applies any grace that ran out meanwhile.
                # A failed state-file write is retried on its own timer, failing source or not.
                deadline = earliest(None if self._failing else self._memory_deadline, self._save_retry_at)
                if pending_next is None:
                    pending_next = asyncio.ensure_future(anext(events))
                timeout = None if deadline is None else max(0.0, deadline - self.clock())
                done, _ = await asyncio.wait({pending_next}, timeout=timeout)
                if not done:
                    # A grace period or the restart fallback came due; its change is persisted like any
                    # other. Or a write is to be retried.
                    changed = not self._failing and self._reselect()
                    retry_due = self._save_retry_at is not None and self.clock() >= self._save_retry_at
                    if changed or retry_due:
                        await self._persist()
                    continue
                event, pending_next = pending_next.result(), None
                await self._handle(event)
        finally:
            if pending_next is not None:
                pending_next.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending_next
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

    async def _handle(self, event: object) -> None:
        if isinstance(event, View):
            self.observer.view(self.source.name, event)
            if event.skipped:
                log.warning("%d malformed record(s) skipped; they can shrink the candidates, never add one",
                            event.skipped)
            self._failing = False
            self._endpoints = event.endpoints
            if self._reselect():
                await self._persist()
        elif isinstance(event, Failure):
            self.observer.failure(self.source.name, event)
            self._failing = True
            retry = "" if event.retry_in is None else f"; retrying in {event.retry_in:.1f}s"
            log.warning("discovery failed (%s): %s%s", event.reason, event.detail, retry)
            self.state.mark_failing(reason=event.reason, detail=event.detail)
        elif isinstance(event, Restart):
            self.observer.restart(self.source.name, event)
            log.info("watch restarted: %s", event.reason)

    def _reselect(self) -> bool:
        """Run select() on the last view; True when the served list changed."""
        if self._endpoints is None:
            self._memory_deadline = None
            return False
        selection = select(
            self._endpoints, policy=self.policy, identity=self.identity, now=self.clock(), memory=self._memory
        )
        self._memory = selection.memory
        self._memory_deadline = selection.next_deadline
        changed = self.state.publish(selection, source=self.source.name, now=self.wall())
        self.observer.selected(selection, changed=changed)
        if selection.mode != self._last_mode:
            self._log_mode(selection)
            self._last_mode = selection.mode
        if changed:
            log.info("seeds now %s (%s)", ",".join(selection.served) or "-", selection.mode)
        return changed

    def _apply_static_fallback(self) -> None:
        selection = select(None, policy=self.policy, identity=self.identity, now=self.clock())
        self.state.publish_fallback(selection, source="static")

    def _log_mode(self, selection: Selection) -> None:
        if selection.mode is Mode.RESTART_FALLBACK:
            log.warning(
                "no peer has been eligible for %.0fs: unready peers are now candidates (whole-cluster restart)",
                self.policy.restart_fallback_after,
            )
        elif selection.mode in (Mode.UNAVAILABLE, Mode.BOOTSTRAP, Mode.STATIC):
            log.warning("%s: %s", selection.mode, selection.reason)

    async def _persist(self) -> None:
        """Write the current list; after a failure, try again in ``save_retry`` seconds (or at the
        next change, whichever is first) until a write succeeds, so the file never stays behind."""
        if self.state_file is None or not self.state.snapshot.servable:
            return
        try:
            await asyncio.to_thread(self.state_file.save, self.state.snapshot)
        except OSError as exc:
            # Serving goes on; only the restart shortcut is at risk. One line per new error, not per retry.
            self._save_retry_at = self.clock() + self.save_retry
            if str(exc) != self._save_error:
                log.error("cannot write state file %s: %s; retrying every %gs and at each change",
                          self.state_file.path, exc, self.save_retry)
                self._save_error = str(exc)
            return
        if self._save_error is not None:
            log.info("state file %s written after earlier failures", self.state_file.path)
        self._save_retry_at = self._save_error = None

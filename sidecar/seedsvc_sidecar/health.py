"""Liveness of the sidecar's long-lived tasks, as plain data for ``/healthz``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Health:
    """The tasks whose death makes the sidecar unhealthy (the discovery loop, in ``serve``).

    Answering at all shows the event loop is alive; a watched task that has ended, for whatever
    reason, means the served list can no longer change, so the container should be restarted.
    """

    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        self._tasks[name] = task

    def forget(self, name: str) -> None:
        self._tasks.pop(name, None)

    def problem(self) -> str | None:
        """None while every watched task runs; otherwise one line saying which ended and how."""
        for name, task in sorted(self._tasks.items()):
            if not task.done():
                continue
            if task.cancelled():
                return f"{name} task was cancelled"
            exc = task.exception()
            if exc is not None:
                return f"{name} task died: {type(exc).__name__}: {exc}"
            return f"{name} task ended"
        return None

"""Waiting for a condition until a deadline: the one loop every part of the local cluster uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The condition did not hold before the deadline; the message names what was awaited."""


def poll(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
    error: type[Exception] = PollTimeout,
) -> T:
    """The first result of ``check`` that is neither None nor False.

    ``alive`` runs before each check and raises to stop early (a child process died, say); after
    ``timeout`` seconds ``error`` is raised with a message naming ``what``. ``check`` runs at least
    once, however small the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

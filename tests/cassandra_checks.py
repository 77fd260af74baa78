"""Waiting and driver access for the tests that run real Cassandra nodes; failures fail the test."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from seedsvc_devcluster import cassandra as harness


def driver(contact_points: Sequence[str]) -> Any:
    """A driver ``Cluster``; fails (never skips) with the fix if the driver is missing or broken."""
    try:
        return harness.driver(contact_points)
    except harness.DriverUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def poll(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """The first truthy result of ``condition``; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

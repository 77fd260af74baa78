"""Waiting and driver access for the tests that run real Cassandra nodes; failures fail the test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from seedsvc_devcluster import cassandra as harness
from seedsvc_devcluster import polling


def driver(contact_points: Sequence[str]) -> Any:
    """A driver ``Cluster``; fails (never skips) with the fix if the driver is missing or broken."""
    try:
        return harness.driver(contact_points)
    except harness.DriverUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def poll(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """The first truthy result of ``condition``; fails the test after ``timeout`` seconds."""
    try:
        return polling.poll(lambda: condition() or None, timeout=timeout, what=what, interval=interval)
    except polling.PollTimeout as exc:
        pytest.fail(str(exc))

"""Attribute leaked sockets and transports to the test that leaked them.

ResourceWarning is an error here, but CPython reports an unclosed socket only when the garbage
collector frees it, which is whenever the collector next runs: often in a later, unrelated test,
which then fails (or the leak goes unseen at the end of the session). After each async test (the
only ones whose event loops make transports in this process), once pytest has dropped its fixtures,
this collects garbage, and anything reported then fails the session naming the test that left it.
"""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Generator

import pytest

LEAKS = pytest.StashKey[list[str]]()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    yield
    if item.get_closest_marker("asyncio") is None:
        return
    reported: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: reported.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)  # whatever -W says: this check wants them
            gc.collect()
    finally:
        sys.unraisablehook = previous
    reported += [f"{w.category.__name__}: {w.message}" for w in caught]
    if reported:
        item.config.stash.setdefault(LEAKS, []).extend(f"{item.nodeid}: {r}" for r in reported)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    leaks = terminalreporter.config.stash.get(LEAKS, [])
    if leaks:
        terminalreporter.section("resources left by tests (collected after they ended)", red=True)
        terminalreporter.line("these fail the run although the tests themselves passed:", red=True)
        for leak in leaks:
            terminalreporter.line(leak)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash.get(LEAKS, []) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

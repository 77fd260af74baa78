"""Child processes that never outlive the tests.

Every long-lived child (JVMs, sidecars, CoreDNS, the control plane) runs in its own process group, is
registered here so a finalizer or the atexit hook can SIGKILL the whole group, and, when forked from
the main thread, gets PR_SET_PDEATHSIG so the kernel kills it even if pytest itself is SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

PR_SET_PDEATHSIG: Final = 1
# Looked up once, in the parent: the child between fork and exec must not dlopen (another thread of
# the parent may have held the loader lock at fork time), only call.
PRCTL: Final = ctypes.CDLL(None, use_errno=True).prctl

_live: set[int] = set()
_lock = threading.Lock()


def die_with_parent() -> None:
    """In the child between fork and exec: the kernel SIGKILLs it when the forking thread exits."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def preexec_for_current_thread(also: Callable[[], None] | None = None) -> Callable[[], None] | None:
    """The ``preexec_fn`` for a child forked from this thread (only syscalls: no locks, no imports).

    PDEATHSIG fires when the *thread* that forked exits, not the process: a child started from a
    worker thread (asyncio.to_thread, an executor) would die when that thread is retired, so only the
    main thread uses it; the registry's atexit hook and finalizers cover the other case.
    """
    if threading.current_thread() is not threading.main_thread():
        return also
    if also is None:
        return die_with_parent

    def preexec() -> None:
        also()
        die_with_parent()

    return preexec


def kill_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def register(pgid: int) -> None:
    with _lock:
        _live.add(pgid)


def forget(pgid: int) -> None:
    with _lock:
        _live.discard(pgid)


def reap(pgid: int) -> None:
    """Finalizer action: SIGKILL the group if it is still registered (nobody stopped it)."""
    with _lock:
        alive = pgid in _live
        _live.discard(pgid)
    if alive:
        kill_group(pgid)


@atexit.register
def reap_all() -> None:
    with _lock:
        groups = list(_live)
        _live.clear()
    for pgid in groups:
        kill_group(pgid)


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process from /proc; 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise work across processes (two pytest sessions, a shell build and a test run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""Child processes that never outlive the process that started them (a test run, the demo, `up`).

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
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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


def _status_bytes(pid: int, key: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process from /proc; 0 once it has exited."""
    return _status_bytes(pid, "VmRSS")


def hwm_bytes(pid: int) -> int:
    """Peak resident set size of a live process from /proc; 0 once it has exited."""
    return _status_bytes(pid, "VmHWM")


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


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


_KILL_WAIT_S: Final = 10.0  # SIGKILL takes effect at once; this only bounds a wait on a wedged kernel


class ChildExited(RuntimeError):
    """A child process exited while it should be running; the message carries its log tail."""


@dataclass
class ChildProcess:
    """One long-lived child: its own process group, stdout+stderr appended to ``log_path``.

    It dies with the forking thread when started from the main thread (PDEATHSIG), is registered so
    the atexit hook kills it otherwise, and :meth:`stop` ends the whole group.
    """

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    preexec: Callable[[], None] | None = None
    """Run in the child before exec (syscalls only), e.g. to join cgroups."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=None if self.env is None else dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches everything it spawned
                preexec_fn=preexec_for_current_thread(self.preexec),
            )
        register(self.process.pid)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self, error: type[Exception] = ChildExited) -> None:
        """Raise ``error`` with the log tail if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise error(f"{self.name} exited with {self.process.returncode}; last log lines:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        """Signal the whole group, only while the child is unreaped (so its pgid cannot be reused)."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process.pid, sig)

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, SIGKILL after ``timeout_s`` (at once if 0); then SIGKILL what is left in the group."""
        if self.process is None:
            return None
        process = self.process
        if process.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped (paused) process would never see SIGTERM
            kill_group(process.pid, signal.SIGTERM if timeout_s > 0 else signal.SIGKILL)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(process.pid, signal.SIGKILL)
                process.wait(timeout=_KILL_WAIT_S)
        # Children the process may have left in its group go too.
        kill_group(process.pid, signal.SIGKILL)
        forget(process.pid)
        self.process = None
        return process.returncode

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def rss_bytes(self) -> int:
        return rss_bytes(self.process.pid) if self.process is not None else 0

"""The one wrapper around a real ``python -m seedsvc serve`` child process.

Tests, the pod runner, the demo and the benchmarks all start sidecars through :class:`SidecarProcess`:
its environment is the caller's (nothing of the calling process's seedsvc, pod or kubeconfig
settings leaks in), stdout and stderr go to a log file, it runs in its own process group and dies
with its parent (see :mod:`seedsvc_devcluster.processes`). With ``SEEDSVC_PORT=0`` (the default here)
the sidecar picks a free port and :meth:`SidecarProcess.start` reads it from the "listening on" line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from seedsvc_devcluster import polling, processes
from seedsvc_devcluster.paths import REPO_ROOT

LISTENING: Final = re.compile(r"listening on http://(?P<host>[^:/\s\"]+):(?P<port>\d+)")
START_TIMEOUT_S: Final = 30.0
"""Bound for ``seedsvc serve`` to import, bind and log its address (about a second when idle)."""
STOP_TIMEOUT_S: Final = 10.0
HTTP_TIMEOUT_S: Final = 2.0

# Variables of the calling process that must not leak into a sidecar: each sidecar gets exactly the
# configuration its pod (or test) gives it.
_SCRUBBED_PREFIXES: Final = ("SEEDSVC_", "CASSANDRA_", "POD_", "KUBERNETES_")
_SCRUBBED: Final = ("KUBECONFIG",)


class SidecarError(RuntimeError):
    """A sidecar did not start, exited, or a wait ran out; the message carries the log tail."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any seedsvc, Cassandra, pod or kubeconfig setting, plus ``extra``.

    PYTHONPATH names the checkout, so a sidecar runs this tree's code whether or not it is installed.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "sidecar"), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m seedsvc ARGS`` to completion (for commands that exit: --help, --version, bad input)."""
    return subprocess.run(
        [sys.executable, "-m", "seedsvc", *args],
        env=clean_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class HttpAnswer(NamedTuple):
    """One HTTP answer; status 0 means no answer (refused, timed out) with the error as body."""

    status: int
    headers: Mapping[str, str]
    body: str


def http_get(url: str, *, timeout: float = HTTP_TIMEOUT_S) -> HttpAnswer:
    """One GET; a refused or timed-out connection is status 0 with the error as body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers), error.read().decode().strip())
    except OSError as error:
        return HttpAnswer(0, {}, str(error))


class SidecarProcess:
    """One real ``python -m seedsvc serve``, configured by ``env`` (already cleaned) and ``args``."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path, *, args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.args = args
        self.base_url: str | None = None
        self.started = 0.0
        """time.monotonic() at launch."""
        self.listening_at = 0.0
        """time.monotonic() when the listening address was first seen in the log."""
        self._child: processes.ChildProcess | None = None
        self._returncode: int | None = None
        self._log_offset = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"SidecarProcess({self.name}, {self.base_url}, pid={self.pid})"

    # ---- lifecycle -------------------------------------------------------------------------------

    def launch(self) -> SidecarProcess:
        """Start the process and return at once (benchmarks time start-up from here)."""
        if self.is_running():
            raise SidecarError(f"{self} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        port = self.env.get("SEEDSVC_PORT", "0")
        self.base_url = None if port == "0" else f"http://{self.env.get('SEEDSVC_HOST', '127.0.0.1')}:{port}"
        argv = [sys.executable, "-m", "seedsvc", "serve", *self.args]
        self.started = time.monotonic()
        self._child = processes.ChildProcess(self.name, argv, self.log_path, cwd=REPO_ROOT, env=self.env).start()
        assert self._child.pid is not None
        self._finalizer = weakref.finalize(self, processes.reap, self._child.pid)
        return self

    def start(self, timeout: float = START_TIMEOUT_S) -> SidecarProcess:
        """Launch and wait until it logs its listening address; stops it and raises if it does not."""
        self.launch()
        try:
            polling.poll(self._listening, timeout=timeout, what=f"sidecar {self.name} to listen", interval=0.05)
        except (polling.PollTimeout, SidecarError) as exc:
            self.stop()
            raise SidecarError(f"{exc}:\n{self.log_tail()}") from None
        self.listening_at = time.monotonic()
        return self

    def _listening(self) -> bool:
        match = LISTENING.search(self.log_text())
        if match:
            self.base_url = f"http://{match['host']}:{match['port']}"
            return True
        if not self.is_running():
            raise SidecarError(f"sidecar {self.name} exited with {self.returncode}")
        return False

    def terminate(self) -> None:
        """SIGTERM without waiting, so several sidecars shut down together; :meth:`stop` then reaps."""
        if self._child is not None:
            self._child.signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT_S, *, signum: signal.Signals = signal.SIGTERM) -> int | None:
        """``signum`` (SIGTERM: the sidecar answers waiting clients and exits), SIGKILL after ``timeout``."""
        if self._child is None or self._child.process is None:
            return self.returncode
        process = self._child.process
        if process.poll() is None:
            processes.kill_group(process.pid, signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                processes.kill_group(process.pid, signal.SIGKILL)
                process.wait()
        self._returncode = process.returncode
        self._child.stop(0.0)  # reaps the group and forgets it
        if self._finalizer is not None:
            self._finalizer.detach()
        return self._returncode

    # ---- state -----------------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._child.process if self._child is not None else None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else self._returncode

    def is_running(self) -> bool:
        return self._child is not None and self._child.running()

    @property
    def url(self) -> str:
        if self.base_url is None:
            raise SidecarError(f"{self} has not started")
        return self.base_url

    @property
    def seeds_url(self) -> str:
        return self.url + "/seeds"

    def rss_bytes(self) -> int:
        return processes.rss_bytes(self.pid) if self.is_running() and self.pid else 0

    # ---- HTTP ------------------------------------------------------------------------------------

    def get(self, path_and_query: str, *, timeout: float = HTTP_TIMEOUT_S) -> HttpAnswer:
        return http_get(self.url + path_and_query, timeout=timeout)

    def seeds(self) -> HttpAnswer:
        return self.get("/seeds")

    def is_ready(self) -> bool:
        return self.is_running() and self.get("/readyz").status == 200

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.01) -> float:
        """Seconds from launch to the first ``/readyz`` 200 (polled every ``interval``)."""

        def ready() -> bool:
            if not self.is_running():
                raise SidecarError(f"sidecar {self.name} exited:\n{self.log_tail()}")
            return self.base_url is not None and self.get("/readyz", timeout=1.0).status == 200

        polling.poll(ready, timeout=timeout, what=f"sidecar {self.name} /readyz", interval=interval, error=SidecarError)
        return time.monotonic() - self.started

    def wait_for_seeds(self, predicate: Callable[[HttpAnswer], bool], timeout: float, what: str) -> HttpAnswer:
        """Poll ``GET /seeds`` until ``predicate`` holds."""
        last: list[HttpAnswer] = []

        def check() -> HttpAnswer | None:
            answer = self.seeds()
            last[:] = [answer]
            if predicate(answer):
                return answer
            if not self.is_running():
                raise SidecarError(f"sidecar {self.name} exited while waiting for {what}:\n{self.log_tail()}")
            return None

        try:
            return polling.poll(check, timeout=timeout, what=what)
        except polling.PollTimeout:
            answer = last[0]
            raise SidecarError(
                f"sidecar {self.name}: no {what} within {timeout:.0f}s; last {answer.status} {answer.body!r}\n"
                f"{self.log_tail()}"
            ) from None

    def wait_for_list(self, expected: list[str], timeout: float = 30.0) -> HttpAnswer:
        """Wait until ``GET /seeds`` answers 200 with exactly ``expected`` (in order)."""
        text = ",".join(expected)
        return self.wait_for_seeds(lambda a: a.status == 200 and a.body == text, timeout, f"seeds {text}")

    # ---- log -------------------------------------------------------------------------------------

    def log_text(self) -> str:
        """What this run (since the latest launch) wrote to the log."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self) -> list[str]:
        """This run's log lines, each with its line end."""
        return self.log_text().splitlines(keepends=True)

    def log_tail(self, max_bytes: int = 4000) -> str:
        return self.log_text()[-max_bytes:] or f"(nothing in {self.log_path})"

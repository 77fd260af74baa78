"""``seedsvc serve`` for CLI-level tests: started with flags on an ephemeral port; failures fail the test.

A thin test-facing face of :class:`seedsvc_devcluster.sidecar_process.SidecarProcess`: ``get`` answers
``(status, headers, body)``, ``stop`` answers ``(exit status, seconds it took)``, and ``log`` is the
list of lines written so far. The ``served_processes`` fixture stops whatever a test left running.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from seedsvc_devcluster.ports import closed_port
from seedsvc_devcluster.sidecar_process import HttpAnswer, SidecarError, SidecarProcess, clean_env, run

__all__ = ["PROMPT_EXIT", "Served", "closed_port", "run", "start"]

PROMPT_EXIT = 5.0  # the shutdown grace of serve; an exit this late means something waited it out
START_TIMEOUT = 20.0  # generous: interpreter and aiohttp start-up on a loaded CI machine
STOP_TIMEOUT = 10.0


@dataclass
class Served:
    sidecar: SidecarProcess

    @property
    def log(self) -> list[str]:
        return self.sidecar.log_lines()

    @property
    def started(self) -> float:
        return self.sidecar.started

    @property
    def listening_at(self) -> float:
        return self.sidecar.listening_at

    @property
    def process(self) -> subprocess.Popen[bytes]:
        process = self.sidecar.process
        assert process is not None, "the sidecar has been stopped"
        return process

    def url(self, path: str) -> str:
        return self.sidecar.url + path

    def get(self, path: str, timeout: float = 10) -> HttpAnswer:
        answer = self.sidecar.get(path, timeout=timeout)
        if answer.status == 0:
            raise OSError(answer.body)
        return answer

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        began = time.monotonic()
        code = self.sidecar.stop(STOP_TIMEOUT, signum=signal.Signals(signum))
        assert code is not None
        return code, time.monotonic() - began

    def close(self) -> None:
        self.sidecar.stop(0.0)
        self.sidecar.log_path.unlink(missing_ok=True)


def start(*args: str, env: Mapping[str, str] | None = None) -> Served:
    """Start ``seedsvc serve`` on an ephemeral loopback port; wait for its "listening on" line."""
    with tempfile.NamedTemporaryFile(prefix="seedsvc-serve-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    sidecar = SidecarProcess(
        "serve", clean_env(env), log_path, args=("--host", "127.0.0.1", "--port", "0", *args)
    )
    try:
        sidecar.start(START_TIMEOUT)
    except SidecarError as exc:
        log_path.unlink(missing_ok=True)
        pytest.fail(f"seedsvc serve did not start: {exc}")
    return Served(sidecar)


@pytest.fixture
def served_processes() -> Iterator[list[Served]]:
    processes: list[Served] = []
    yield processes
    for served in processes:
        served.close()

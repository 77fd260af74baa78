"""Run the real ``python -m seedsvc`` as a subprocess: start ``serve`` on an ephemeral port, call it, stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0  # generous: interpreter and aiohttp start-up on a loaded CI machine
STOP_TIMEOUT = 10.0
PROMPT_EXIT = 5.0  # the shutdown grace of serve; an exit this late means something waited it out
_OURS = ("CASSANDRA_", "SEEDSVC_", "POD_", "KUBERNETES_")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any setting of ours, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS) and k != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "sidecar"), env.get("PYTHONPATH", "")])
    env.update(extra or {})
    return env


def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seedsvc", *args], env=clean_env(env), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def closed_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    started: float
    log: list[str]
    drainer: threading.Thread | None = None
    listening_at: float = 0.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict[str, str], str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read().decode()

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(STOP_TIMEOUT)
        elapsed = time.monotonic() - started
        if self.drainer is not None:
            self.drainer.join(STOP_TIMEOUT)  # the whole log, up to the last line
        return code, elapsed

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.drainer is not None:
            self.drainer.join(STOP_TIMEOUT)
        if self.process.stderr is not None:
            self.process.stderr.close()


def start(*args: str, env: Mapping[str, str] | None = None) -> Served:
    """Start ``seedsvc serve`` on an ephemeral loopback port; wait for its "listening on" line."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "seedsvc", "serve", "--host", "127.0.0.1", "--port", "0", *args],
        env=clean_env(env), cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    assert process.stderr is not None
    log: list[str] = []
    port: int | None = None
    deadline = time.monotonic() + START_TIMEOUT
    while port is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
    listening_at = time.monotonic()
    if port is None:
        Served(process, 0, started, log).close()
        pytest.fail(f"seedsvc serve did not start: {''.join(log)}")
    # Keep draining stderr so the child never blocks on a full pipe.
    drainer = threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True)
    drainer.start()
    return Served(process, port, started, log, drainer, listening_at)


@pytest.fixture
def served_processes() -> Iterator[list[Served]]:
    processes: list[Served] = []
    yield processes
    for served in processes:
        served.close()

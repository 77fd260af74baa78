"""The documented Python API: current_seeds (async and sync) and watch_seeds, with real sources."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import seedsvc
from seedsvc.selection import Mode
from seedsvc.settings import ConfigError
from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane
from tests.test_kubernetes_source import create


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_settings_from_env_reads_the_sidecar_variables_and_validates_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASSANDRA_SERVICE_NUM_SEEDS", "5")
    monkeypatch.setenv("CASSANDRA_SERVICE", "ring")
    settings = seedsvc.settings_from_env(namespace="db")
    assert (settings.selection.count, settings.discovery.service, settings.discovery.namespace) == (5, "ring", "db")
    with pytest.raises(ConfigError, match=r"--count='zero'"):
        seedsvc.settings_from_env(count="zero")


def test_current_seeds_sync_with_static_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = seedsvc.settings_from_env(source="static", seeds="10.0.0.2,10.0.0.1", namespace="default")
    result = seedsvc.current_seeds_sync(settings)
    assert result.seeds == ("10.0.0.1", "10.0.0.2")  # rank order: ordinals, then address
    assert result.mode is Mode.DISCOVERED and result.source == "static"


async def test_current_seeds_raises_with_the_last_error_when_nothing_answers() -> None:
    settings = seedsvc.settings_from_env(
        source="dns", dns_nameserver=f"127.0.0.1:{closed_udp_port()}", dns_timeout="0.2", namespace="default"
    )
    with pytest.raises(seedsvc.SeedsUnavailable, match=r"no answer from the dns source within 1s; last error"):
        await seedsvc.current_seeds(settings, timeout=1.0)


@pytest.mark.controlplane
async def test_current_seeds_and_watch_seeds_against_the_api(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    create(control_plane, namespace, k8s.endpoint_slice("db-1", "db", [("db-0", "10.11.0.1", True)]))
    settings = seedsvc.settings_from_env(
        kubeconfig=str(control_plane.kubeconfig), namespace=namespace, service="db", pod_name="db-5"
    )
    once = await seedsvc.current_seeds(settings)
    assert once.seeds == ("10.11.0.1",) and once.source == "kubernetes"

    updates = seedsvc.watch_seeds(settings)
    first = await asyncio.wait_for(anext(updates), 30)
    assert first.seeds == ("10.11.0.1",) and not first.stale
    create(control_plane, namespace, k8s.endpoint_slice("db-2", "db", [("db-1", "10.11.0.2", True)]))
    second = await asyncio.wait_for(anext(updates), 30)
    assert second.seeds == ("10.11.0.1", "10.11.0.2")
    assert second.generation > first.generation
    await updates.aclose()  # stops the discovery task; the autouse checks below see no task left
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leftover, leftover

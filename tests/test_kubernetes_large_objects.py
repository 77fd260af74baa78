"""A watch event far larger than aiohttp's read buffer, from the real API server (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from seedsvc_devcluster import k8s_objects as k8s
from seedsvc_devcluster.controlplane import ControlPlane
from tests.test_kubernetes_source import admin_settings, create, recording

pytestmark = pytest.mark.controlplane

ENDPOINTS = 1000  # the most one EndpointSlice may hold


def big_slice() -> dict[str, Any]:
    """About 0.9 MB of JSON: 1,000 endpoints with long (valid) names, plus 250 KB of annotations
    (Kubernetes allows 256 KiB in all)."""
    obj = k8s.endpoint_slice("big", "cassandra", [
        (f"cassandra-{'p' * 200}-{i}", f"10.{i // 250}.{i % 250}.1", True) for i in range(ENDPOINTS)
    ])
    for i, endpoint in enumerate(obj["endpoints"]):
        endpoint["hostname"] = f"{'h' * 55}-{i}"
        endpoint["nodeName"] = f"{'n' * 200}.example.com"
    obj["metadata"]["annotations"] = {"example.com/padding": "x" * 250_000}
    return obj


async def test_a_large_endpointslice_arrives_through_the_watch(control_plane: ControlPlane, namespace: str) -> None:
    async with recording(admin_settings(control_plane, namespace, api="endpointslices")) as recorder:
        await recorder.view_where("the first (empty) list", lambda view: True)
        created = create(control_plane, namespace, big_slice())
        assert len(created["endpoints"]) == ENDPOINTS
        view = await recorder.view_where("the big slice", lambda v: len(v.endpoints) == ENDPOINTS)
        assert {e.address for e in view.endpoints} == {f"10.{i // 250}.{i % 250}.1" for i in range(ENDPOINTS)}
        assert not [e for e in recorder.events if type(e).__name__ == "Failure"]

"""settled_pods: the one rule both the kubelet stand-in and the real pod layer's waits use."""

from __future__ import annotations

from typing import Any

from seedsvc_devcluster.kubelet import Pod, settled_pods


def pod(name: str, *, ready: bool = True, ip: str | None = "198.18.16.2", deleting: bool = False) -> Pod:
    metadata: dict[str, Any] = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": metadata, "status": status}


def names(pods: list[Pod] | None) -> list[str] | None:
    return None if pods is None else [p["metadata"]["name"] for p in pods]


def test_exactly_count_ready_pods_with_ips_come_back_sorted_by_name() -> None:
    assert names(settled_pods([pod("c-1"), pod("c-0")], 2)) == ["c-0", "c-1"]


def test_too_few_or_too_many_live_pods_are_still_settling() -> None:
    assert settled_pods([pod("c-0")], 2) is None
    assert settled_pods([pod("c-0"), pod("c-1"), pod("c-2")], 2) is None


def test_a_pod_not_ready_or_without_an_ip_is_still_settling() -> None:
    assert settled_pods([pod("c-0"), pod("c-1", ready=False)], 2) is None
    assert settled_pods([pod("c-0"), pod("c-1", ip=None)], 2) is None


def test_terminating_pods_are_not_counted() -> None:
    assert names(settled_pods([pod("c-0"), pod("c-0", deleting=True)], 1)) == ["c-0"]


def test_waiting_for_unready_pods_wants_every_one_unready() -> None:
    unready = [pod("c-0", ready=False), pod("c-1", ready=False)]
    assert names(settled_pods(unready, 2, ready=False)) == ["c-0", "c-1"]
    assert settled_pods([pod("c-0", ready=False), pod("c-1")], 2, ready=False) is None

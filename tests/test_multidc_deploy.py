"""deploy/overlays/multi-dc: two DCs, each the statefulset overlay in its own namespace, rendered with
the real kubectl's kustomize; their settings load as seedsvc loads them and point at each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedsvc import settings as seedsvc_settings
from seedsvc_devcluster import deploy_support as d
from tests.test_deploy import FAKE_DOWNWARD, _kubectl, rendered

pytestmark = pytest.mark.controlplane

MULTI_DC = d.OVERLAYS_DIR / "multi-dc"


def render(dc: str) -> list[d.Obj]:
    return d.parse(d.kustomize(_kubectl(), MULTI_DC / dc))


@pytest.mark.parametrize(("dc", "peer"), [("dc1", "dc2"), ("dc2", "dc1")])
def test_each_dc_is_the_statefulset_overlay_in_its_namespace_with_peer_settings(dc: str, peer: str) -> None:
    objects = render(dc)
    namespace = f"cassandra-{dc}"
    assert {o["metadata"]["namespace"] for o in objects} == {namespace}
    assert not {"ClusterRole", "ClusterRoleBinding", "Namespace"} & {o["kind"] for o in objects}
    # Least privilege unchanged: the same Role as the single-DC overlay, bound in this namespace only.
    single = list(rendered("statefulset"))
    assert d.one(objects, "Role")["rules"] == d.one(single, "Role")["rules"]
    assert [s["namespace"] for s in d.one(objects, "RoleBinding")["subjects"]] == [namespace]

    (workload,) = d.workloads(objects)
    spec = d.pod_spec(workload)
    env = d.resolve_env(d.container(spec, d.SIDECAR), FAKE_DOWNWARD)
    loaded = seedsvc_settings.load({}, env, serviceaccount_namespace=lambda _: None, resolv_conf=Path("/nonexistent"))
    group = loaded.federation
    assert group.datacenter == dc and group.bootstrap_datacenter == "dc1"
    assert group.peers == ((peer, f"http://cassandra-seedsvc.cassandra-{peer}.svc:8080"),)
    assert group.bootstrap_here == (dc == "dc1")
    # Cassandra's snitch and seedsvc name the same DC.
    assert d.resolve_env(d.container(spec, d.CASSANDRA), FAKE_DOWNWARD)["CASSANDRA_DC"] == dc
    # The state file is on the pod's data volume (its evidence of having run survives re-creation).
    mount = d.volume_mount_for(d.container(spec, d.SIDECAR), str(loaded.state.file))
    assert mount is not None and mount["name"] == "data"
    assert "data" in {t["metadata"]["name"] for t in workload["spec"]["volumeClaimTemplates"]}

    # The Service the peer DC polls: every pod's sidecar port, ready or not (a restarting DC answers).
    peers_service = d.one(objects, "Service", "cassandra-seedsvc")
    assert peers_service["spec"]["publishNotReadyAddresses"] is True
    assert peers_service["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    (port,) = peers_service["spec"]["ports"]
    sidecar_ports = {p["name"]: p["containerPort"] for p in d.container(spec, d.SIDECAR)["ports"]}
    assert port["port"] == 8080 and sidecar_ports[port["targetPort"]] == loaded.http.port

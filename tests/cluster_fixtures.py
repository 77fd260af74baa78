"""pytest fixtures for the local cluster (loaded by tests/conftest.py as a plugin).

- ``local_cluster`` (session): the :class:`LocalCluster` the fixtures below share.
- ``control_plane`` (session): the running ControlPlane with default options.
- ``control_plane_factory`` (session): ``factory(options) -> ControlPlane`` for a second, differently
  configured cluster (watch cache off, discovery.k8s.io/v1 off, ...); each is stopped when the session
  ends, or earlier with ``plane.stop()``.
- ``kubelet`` (session): the kubelet/scheduler stand-in on ``control_plane`` (3 nodes, zone-a/b/c).
- ``namespace`` (function): a fresh namespace whose default ServiceAccount exists; deleted afterwards.
- ``kube_api`` (session): a sync ``kubernetes.client.ApiClient`` with the admin kubeconfig.

A missing prerequisite (no Go toolchain, a failed build) fails the test with the reason; it never
skips, so CI cannot go green without having run these tests.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from seedsvc_devcluster import build
from seedsvc_devcluster.controlplane import ControlPlane, ControlPlaneError, ControlPlaneOptions
from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions
from seedsvc_devcluster.local_cluster import LocalCluster

ControlPlaneFactory = Callable[[ControlPlaneOptions], ControlPlane]

# Markers whose tests need the binaries from seedsvc_devcluster/go.
NEEDS_BINARIES = ("controlplane", "dns")

_build_error: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries before the first test, outside any per-test timeout: a cold build
    takes many minutes on 2 cores, far more than pytest-timeout allows one test."""
    if not any(item.get_closest_marker(marker) for item in session.items for marker in NEEDS_BINARIES):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("[controlplane] building or finding the control-plane binaries")
    try:
        build.ensure_built()
    except build.BuildError as exc:
        _build_error.append(str(exc))  # reported by every test that needs the binaries


def _binaries() -> Path:
    if _build_error:
        pytest.fail(f"cannot build the test control plane (seedsvc_devcluster/go): {_build_error[0]}", pytrace=False)
    try:
        return build.ensure_built()
    except build.BuildError as exc:
        pytest.fail(f"cannot build the test control plane (seedsvc_devcluster/go): {exc}", pytrace=False)


def _started(cluster: LocalCluster) -> LocalCluster:
    try:
        return cluster.start()
    except ControlPlaneError as exc:
        pytest.fail(f"the test control plane did not start (logs in {cluster.workdir}): {exc}", pytrace=False)


def _cluster(directory: Path, options: ControlPlaneOptions) -> LocalCluster:
    """A control plane without a stand-in: most tests start no pods (``kubelet`` adds one)."""
    return _started(LocalCluster(directory, options, kubelet_options=None, bin_dir=_binaries()))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = _cluster(tmp_path_factory.mktemp("cluster"), ControlPlaneOptions())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def control_plane(local_cluster: LocalCluster) -> ControlPlane:
    return local_cluster.plane


@pytest.fixture(scope="session")
def control_plane_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneFactory]:
    started: list[LocalCluster] = []

    def factory(options: ControlPlaneOptions) -> ControlPlane:
        cluster = _cluster(tmp_path_factory.mktemp("cluster-extra"), options)
        started.append(cluster)
        return cluster.plane

    try:
        yield factory
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]  # untyped upstream
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture(scope="session")
def kubelet(local_cluster: LocalCluster) -> Kubelet:
    """The stand-in on the session's cluster; stopped with it."""
    return local_cluster.start_kubelet(KubeletOptions())


def _namespace_name(test_name: str) -> str:
    """Readable and unique: the test's name, cut to fit a DNS label, plus a random suffix."""
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, local_cluster: LocalCluster) -> Iterator[str]:
    name = local_cluster.create_namespace(_namespace_name(request.node.name))
    try:
        yield name
    finally:
        local_cluster.delete_namespace(name)

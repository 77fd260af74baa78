"""The pinned build: versions.env drives every go.mod, and the staging replaces follow the pin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seedsvc_devcluster import build

UPSTREAM_GOMOD_SAMPLE = """module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/odd => ./staging/src/k8s.io/elsewhere
	example.com/other => ../other
)
"""


def test_staging_replacements_map_each_staging_module_to_the_v0_tag() -> None:
    assert build.staging_replacements(UPSTREAM_GOMOD_SAMPLE, "v1.37.2") == {
        "k8s.io/api": "v0.37.2",
        "k8s.io/client-go": "v0.37.2",
    }


def test_staging_replacements_keep_prerelease_suffixes() -> None:
    assert build.staging_replacements(UPSTREAM_GOMOD_SAMPLE, "v1.38.0-rc.1")["k8s.io/api"] == "v0.38.0-rc.1"


def test_staging_replacements_reject_a_non_v1_version() -> None:
    with pytest.raises(build.BuildError):
        build.staging_replacements(UPSTREAM_GOMOD_SAMPLE, "v2.0.0")


def _gomod(module: build.GoModule) -> str:
    return (module.path / "go.mod").read_text()


@pytest.mark.parametrize("module", build.MODULES, ids=lambda m: m.directory)
def test_each_go_mod_requires_exactly_the_pinned_version(module: build.GoModule) -> None:
    pinned = build.read_versions()[module.version_key]
    required = re.findall(rf"^\s*(?:require\s+)?{re.escape(module.upstream)} (\S+)", _gomod(module), re.MULTILINE)
    assert required == [pinned]


def test_kubernetes_staging_replaces_all_follow_the_kubernetes_pin() -> None:
    kubernetes = next(m for m in build.MODULES if m.upstream == "k8s.io/kubernetes")
    minor_patch = build.read_versions()["KUBERNETES_VERSION"].removeprefix("v1.")
    replaces = re.findall(r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (\S+)$", _gomod(kubernetes), re.MULTILINE)
    assert len(replaces) > 20  # every staging module, not a hand-picked few
    assert all(source == target and version == f"v0.{minor_patch}" for source, target, version in replaces)


def test_build_key_changes_with_the_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = build.build_key()
    edited = tmp_path / "versions.env"
    edited.write_text(build.VERSIONS_FILE.read_text().replace("ETCD_VERSION=", "ETCD_VERSION=v0.0.0-"))
    monkeypatch.setattr(build, "VERSIONS_FILE", edited)
    assert build.build_key() != original


def test_cache_root_honours_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEEDSVC_CACHE_DIR", str(tmp_path))
    assert build.cache_root() == tmp_path / "controlplane"

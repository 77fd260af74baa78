"""Container images built without Docker (seedsvc_devcluster.images).

The build tests are slow on a cold cache (debootstrap, apt, pip, Maven: minutes), so they are few and
share one session-scoped build; a warm cache answers at once. The Cassandra image is built on the
project's stand-in base (seedsvc_devcluster/images/cassandra_standin); the tests run its entrypoint's
rendering, never Cassandra. A missing tool (buildah, podman, debootstrap, gcc) fails them with the
reason; nothing is skipped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedsvc_devcluster import paths, processes
from seedsvc_devcluster.images import building, dockerignore, oci_archive, recipes, store
from seedsvc_devcluster.images.store import ImageBuildError

# A cold build downloads Debian packages and PyPI wheels; bounded, but far above pytest's default.
COLD_BUILD_TIMEOUT_S = 3600
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def images() -> building.Images:
    try:
        return building.ensure_images()
    except ImageBuildError as exc:
        pytest.fail(f"cannot build the images: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def podman() -> Iterator[list[str]]:
    """``podman`` on the images' own store, with its run root in a temporary directory."""
    binary = shutil.which("podman")
    if binary is None:
        pytest.fail("podman is not on PATH (apt-get install podman)", pytrace=False)
    root = building.cache_root() / "storage"
    scratch = Path(tempfile.mkdtemp(prefix="seedsvc-podman-"))
    # libpod's database (<root>/libpod) records the run root it was created with, and every session
    # has a new one; it holds only container records, and every container here is --rm.
    with processes.file_lock(building.cache_root() / "store.lock"):
        shutil.rmtree(root / "libpod", ignore_errors=True)
    yield [
        binary,
        "--root", str(root),
        "--runroot", str(scratch / "run"),
        "--tmpdir", str(scratch / "tmp"),
        "--storage-driver", "overlay",
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
    ]
    with processes.file_lock(building.cache_root() / "store.lock"):
        shutil.rmtree(root / "libpod", ignore_errors=True)
        store.unmount_all(root)
    shutil.rmtree(scratch, ignore_errors=True)


def _run(podman: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    # No network and a read-only root, as in the pod; runc refuses rlimits above the caller's.
    limits = [f"--ulimit={limit}" for limit in building.ulimits()]
    command = [*podman, "run", "--rm", "--network=none", "--read-only", "--pull=never", *limits, *args]
    with processes.file_lock(building.cache_root() / "store.lock"):  # no build changes the store meanwhile
        return subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)


@pytest.mark.images
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_archives_are_oci_layouts_with_the_expected_references(images: building.Images) -> None:
    for name in recipes.FINAL_NAMES:
        image = images[name]
        (only,) = oci_archive.read(image.archive)
        assert only.ref_name == image.reference
        assert image.archive.parent.parent == building.cache_root()
    assert images["sidecar"].reference == "localhost/seedsvc/sidecar:0.1.0"
    sidecar = oci_archive.read(images["sidecar"].archive)[0].config["config"]
    assert (sidecar["User"], sidecar["Entrypoint"]) == ("10001:10001", ["seedsvc", "serve"])
    cassandra = oci_archive.read(images["cassandra"].archive)[0].config["config"]
    assert (cassandra["User"], cassandra["Entrypoint"]) == ("999:999", ["seedsvc-cassandra-entrypoint"])


@pytest.mark.images
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_sidecar_runs_read_only_as_uid_10001(images: building.Images, podman: list[str]) -> None:
    done = _run(podman, "--user=10001:10001", "--entrypoint=seedsvc", images["sidecar"].reference, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"seedsvc {recipes.SIDECAR_VERSION}"


@pytest.mark.images
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_cassandra_entrypoint_renders_the_seedsvc_seed_provider(
    images: building.Images, podman: list[str], tmp_path: Path
) -> None:
    # A `cassandra` ahead of the real one on PATH prints what the entrypoint rendered instead of starting.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cassandra").write_text(
        "#!/bin/sh\ntest -s /opt/cassandra/lib/seedsvc-cassandra-shim.jar"
        ' && id -u && cat "$CASSANDRA_CONF/cassandra.yaml"\n'
    )
    (fake / "cassandra").chmod(0o755)
    common = [
        f"--volume={fake}:/fake:ro",
        "--tmpfs=/run/cassandra:rw,mode=1777",
        "--env=PATH=/fake:/usr/local/bin:/usr/bin:/bin",
        images["cassandra"].reference,
    ]
    done = _run(podman, "--env=POD_IP=198.18.0.7", *common)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "999"
    assert "listen_address: 198.18.0.7" in lines
    assert "  - class_name: io.seedsvc.cassandra.SidecarSeedProvider" in lines
    assert "SimpleSeedProvider" not in done.stdout

    bad = _run(podman, "--env=POD_IP=198.18.0.999", *common)
    assert bad.returncode == 2
    assert "invalid POD_IP=198.18.0.999" in bad.stderr


@pytest.mark.images
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_pause_exits_on_sigterm(images: building.Images, tmp_path: Path) -> None:
    # The binary exactly as the archive holds it, run on the host.
    (image,) = oci_archive.read(images["pause"].archive)
    with tarfile.open(images["pause"].archive) as archive:
        blob = archive.extractfile(f"blobs/sha256/{image.layer_digests[0].split(':')[1]}")
        assert blob is not None
        with tarfile.open(fileobj=blob, mode="r:*") as layer:
            layer.extract("pause", tmp_path, filter="data")
    binary = tmp_path / "pause"
    binary.chmod(0o755)
    process = subprocess.Popen([str(binary)])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1)  # still sleeping: it only ends on a signal
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=RUN_TIMEOUT_S) == 0
    finally:
        process.kill()
        process.wait()


def test_warm_lookup_starts_no_build(images: building.Images, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*_: object, **__: object) -> None:
        raise AssertionError("a warm lookup must not touch the image store")

    monkeypatch.setattr(building, "session", no_build)
    again = building.ensure_images()
    assert again.by_name == images.by_name


# --- cache keys: no build ----------------------------------------------------------------------------


def _checkout(root: Path) -> Path:
    """A copy of the files the sidecar key reads, plus files its .dockerignore leaves out."""
    for relative in ("deploy/images/sidecar.Dockerfile", "deploy/images/sidecar.Dockerfile.dockerignore",
                     "pyproject.toml", "README.md", "seedsvc/__init__.py"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(paths.REPO_ROOT / relative, root / relative)
    for relative in ("tests/test_x.py", "seedsvc/__pycache__/x.cpython-311.pyc", ".venv/lib/x.py"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("ignored\n")
    return root


def _sidecar_key(root: Path) -> str:
    return building.Plan(repo_root=root, standin=building.default_standin).key("sidecar")


def test_sidecar_key_changes_with_a_context_file_not_with_an_ignored_one(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    before = _sidecar_key(root)
    for ignored in ("tests/test_x.py", "seedsvc/__pycache__/x.cpython-311.pyc", ".venv/lib/x.py"):
        (root / ignored).write_text("changed\n")
    assert _sidecar_key(root) == before
    (root / "seedsvc/__init__.py").write_text("# changed\n", encoding="utf-8")
    changed = _sidecar_key(root)
    assert changed != before
    (root / "seedsvc/new_module.py").write_text("")
    assert _sidecar_key(root) not in (before, changed)


def test_dockerignore_keeps_what_docker_keeps(tmp_path: Path) -> None:
    patterns = dockerignore.parse(
        (paths.REPO_ROOT / "deploy/images/sidecar.Dockerfile.dockerignore").read_text()
    )
    for kept in ("pyproject.toml", "README.md", "seedsvc/x.py", "sidecar/seedsvc_sidecar/a/b.py"):
        assert not dockerignore.excluded(patterns, kept), kept
    for left_out in ("tests/x.py", "seedsvc/__pycache__/x.pyc", "seedsvc/a/__pycache__/y.pyc",
                     "seedsvc/z.pyc", "deploy/images/sidecar.Dockerfile", ".git/HEAD"):
        assert dockerignore.excluded(patterns, left_out), left_out
    nested = dockerignore.parse("*\n!java-shim/src/\n!deploy/images/cassandra-entrypoint.sh\n")
    assert not dockerignore.excluded(nested, "java-shim/src/main/A.java")
    assert dockerignore.excluded(nested, "java-shim/target/x.jar")
    (tmp_path / "java-shim/src/main").mkdir(parents=True)
    (tmp_path / "java-shim/src/main/A.java").write_text("")
    (tmp_path / "java-shim/target").mkdir()
    (tmp_path / "java-shim/target/x.jar").write_text("")
    assert list(dockerignore.kept_files(tmp_path, nested)) == ["java-shim/src/main/A.java"]


def test_cli_names_a_bad_image_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "seedsvc_devcluster.images", "build", "--only", "sidecar", "nope"],
        capture_output=True, text=True, cwd=paths.REPO_ROOT, timeout=RUN_TIMEOUT_S, check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "'nope'" in done.stderr


def test_mounts_under_lists_only_the_directory_and_below_deepest_first() -> None:
    mountinfo = "\n".join(
        f"{n} 1 0:1 / {point} rw - tmpfs tmpfs rw"
        for n, point in enumerate(["/", "/tmp/b", "/tmp/b/root/proc", "/tmp/b/root", "/tmp/bc", r"/tmp/b/a\040b"])
    )
    assert store.mounts_under(Path("/tmp/b"), mountinfo) == [
        "/tmp/b/root/proc", "/tmp/b/root", "/tmp/b/a b", "/tmp/b"
    ]

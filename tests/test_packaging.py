"""What ``pip install seedsvc`` gets: import names we own, py.typed, the licence, no half test suite.

Both archives are built offline from a copy of the working tree (tracked and new files), with the
setuptools of this environment (the ``test`` extra pins one that reads the PEP 639 licence fields).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = {"seedsvc", "seedsvc_sidecar"}
# Import names of the runtime dependencies in pyproject.toml (dnspython installs `dns`).
DEPENDENCY_IMPORTS = {"kubernetes", "aiohttp", "dns", "prometheus_client"}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(wheel, sdist) of the working tree."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # a file deleted in the working tree is still listed by --cached
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = work / "dist"
    # The target is read first: build_meta rewrites sys.argv while it builds.
    build = ("import sys; out = sys.argv[1]; from setuptools import build_meta as b; "
             "b.build_sdist(out); b.build_wheel(out)")
    subprocess.run([sys.executable, "-c", build, str(out)], cwd=source, check=True, capture_output=True,
                   timeout=300)
    yield next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


def wheel_names(wheel: Path) -> list[PurePosixPath]:
    with zipfile.ZipFile(wheel) as archive:
        return [PurePosixPath(name) for name in archive.namelist()]


def test_the_wheel_installs_exactly_our_import_names(archives: tuple[Path, Path]) -> None:
    # A PyPI project installs a top-level `sidecar` (a Jupyter widget): ours must never be a name
    # another distribution can also own, and tests/benchmarks/the dev cluster are not installed.
    names = wheel_names(archives[0])
    top_level = {n.parts[0] for n in names if not n.parts[0].endswith(".dist-info")}
    assert top_level == OUR_PACKAGES
    with zipfile.ZipFile(archives[0]) as archive:
        declared = next(n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt"))
        assert set(archive.read(declared).decode().split()) == OUR_PACKAGES


def test_the_wheel_imports_only_what_it_declares(archives: tuple[Path, Path]) -> None:
    imported: dict[str, set[str]] = {}
    with zipfile.ZipFile(archives[0]) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                for node in ast.walk(ast.parse(archive.read(name))):
                    modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                               [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                               else [])
                    for module in modules:
                        imported.setdefault(module.split(".")[0], set()).add(name)
    foreign = {module: files for module, files in imported.items()
               if module not in OUR_PACKAGES | DEPENDENCY_IMPORTS | sys.stdlib_module_names}
    assert not foreign, f"imports of undeclared top-level names: {foreign}"


def test_the_wheel_is_typed_and_licensed(archives: tuple[Path, Path]) -> None:
    names = {str(n) for n in wheel_names(archives[0])}
    assert {"seedsvc/py.typed", "seedsvc_sidecar/py.typed"} <= names
    with zipfile.ZipFile(archives[0]) as archive:
        licence = next(n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0, January 2004" in (
        ROOT / "LICENSE").read_text()


def test_the_sdist_holds_the_library_and_none_of_the_test_suite(archives: tuple[Path, Path]) -> None:
    with tarfile.open(archives[1]) as archive:
        # Paths below the seedsvc-<version>/ folder.
        names = {PurePosixPath(*PurePosixPath(n).parts[1:]) for n in archive.getnames()}
    tops = {n.parts[0] for n in names if n.parts}
    assert not tops & {"tests", "seedsvc_devcluster", "benchmarks", "java-shim", "deploy"}, tops
    for needed in ("LICENSE", "README.md", "pyproject.toml", "seedsvc/py.typed", "sidecar/seedsvc_sidecar/py.typed",
                   "sidecar/seedsvc_sidecar/cli.py"):
        assert PurePosixPath(needed) in names, needed

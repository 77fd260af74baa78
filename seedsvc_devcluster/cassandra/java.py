"""Finding a JDK of the major version a Cassandra release needs, without starting a JVM."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from seedsvc_devcluster.cassandra.errors import CassandraHarnessError


def java_major(java_home: Path) -> int | None:
    """Major version from the JDK's ``release`` file."""
    release = java_home / "release"
    if not release.is_file():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


def find_java(major: int, well_known_homes: Sequence[str]) -> Path:
    """The ``java`` binary of a JDK whose major version is ``major``.

    ``SEEDSVC_CASSANDRA_JAVA_HOME`` wins; then ``JAVA_HOME`` if it is the right major (CI may point
    JAVA_HOME at a newer JDK for other builds, which Cassandra refuses); then ``well_known_homes``;
    then whatever ``java`` on PATH resolves to.
    """
    candidates: list[Path] = []
    for var in ("SEEDSVC_CASSANDRA_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    candidates.extend(Path(p) for p in well_known_homes)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "java").is_file() and java_major(home) == major:
            return home / "bin" / "java"
    raise CassandraHarnessError(
        f"no Java {major} JDK found (looked at {', '.join(map(str, candidates))}); "
        f"install openjdk-{major}-jdk-headless or set SEEDSVC_CASSANDRA_JAVA_HOME"
    )

"""The Cassandra server jars from Maven Central, fetched once into ``~/.cache/seedsvc/cassandra/<version>/lib``.

``cassandra_dist/pom.xml`` names ``org.apache.cassandra:cassandra-all`` and lets Maven resolve its
runtime dependencies; the version is a property, so which jars a release needs is decided there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from seedsvc_devcluster import paths, processes
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.release import DEFAULT_VERSION

DIST_POM: Final = Path(__file__).resolve().parent / "cassandra_dist" / "pom.xml"
# A cold ~/.m2 downloads about 70 MB in ~100 jars; generous so a slow mirror still finishes, bounded
# so a hung Maven still ends.
FETCH_TIMEOUT_S: Final = 1800.0


def cache_root() -> Path:
    """Where distributions are cached: ``paths.cache_dir("cassandra")``, as the control-plane build does."""
    return paths.cache_dir("cassandra")


def _marker_path(home: Path) -> Path:
    return home / "COMPLETE.json"


def _is_complete(home: Path, version: str) -> bool:
    """True when a previous fetch finished: the marker lists every jar and all are still there."""
    marker = _marker_path(home)
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    jars = recorded.get("jars", [])
    lib = home / "lib"
    return (
        recorded.get("version") == version
        and f"cassandra-all-{version}.jar" in jars
        and all((lib / jar).is_file() for jar in jars)
    )


def _require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CassandraHarnessError(
            "Maven ('mvn') is not on PATH; it is needed once to fetch cassandra-all from Maven Central "
            "(Debian: apt-get install maven)"
        )
    return mvn


def _run_maven_copy(version: str, lib_dir: Path, timeout_s: float) -> None:
    """Copy cassandra-all and its runtime dependencies into ``lib_dir`` (which must not exist yet)."""
    argv = [
        _require_maven(),
        "-B",
        "-q",
        "-f",
        str(DIST_POM),
        f"-Dcassandra.version={version}",
        f"-DoutputDirectory={lib_dir}",
        "dependency:copy-dependencies",
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CassandraHarnessError(f"Maven did not finish within {timeout_s:.0f}s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise CassandraHarnessError(
            f"Maven failed (exit {proc.returncode}) fetching cassandra-all {version}: {' '.join(argv)}\n{tail}"
        )
    if not (lib_dir / f"cassandra-all-{version}.jar").is_file():
        raise CassandraHarnessError(f"Maven succeeded but {lib_dir} has no cassandra-all-{version}.jar")


def ensure_distribution(version: str = DEFAULT_VERSION, *, timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """Return the distribution directory ``<cache>/<version>`` whose ``lib/`` holds the server jars.

    Fast when cached (a JSON read and a stat per jar). Otherwise resolves the jars with Maven from
    Maven Central into a temporary directory and renames it into place, so an interrupted fetch never
    leaves a half-filled ``lib/`` that looks complete.
    """
    home = cache_root() / version
    if _is_complete(home, version):
        return home
    with processes.file_lock(cache_root() / f".{version}.lock"):
        if _is_complete(home, version):  # another process finished while we waited for the lock
            return home
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=home))
        try:
            _run_maven_copy(version, staging / "lib", timeout_s)
            shutil.rmtree(home / "lib", ignore_errors=True)
            (staging / "lib").rename(home / "lib")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        jars = sorted(p.name for p in (home / "lib").glob("*.jar"))
        _marker_path(home).write_text(json.dumps({"version": version, "jars": jars}, indent=1))
    return home


def jamm_agent(lib_dir: Path) -> Path:
    """Cassandra measures object sizes with jamm, loaded as a Java agent like bin/cassandra does."""
    agents = sorted(lib_dir.glob("jamm-*.jar"))
    if not agents:
        raise CassandraHarnessError(f"no jamm-*.jar in {lib_dir}; delete {lib_dir.parent} and fetch again")
    return agents[-1]

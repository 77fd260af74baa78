"""Writing the stand-in's build context: the Containerfile and the tree it copies into the image.

Layout of the context (paths inside the image without the leading ``opt/`` / ``etc/`` prefix)::

    Containerfile
    opt/cassandra/lib/*.jar                 hard links into the harness's jar cache where possible
    opt/cassandra/bin/cassandra, nodetool   the launcher and the JMX client (files/)
    opt/cassandra/bin/cassandra.in.sh       generated settings + the scripts' shared functions
    etc/cassandra/cassandra.yaml, logback.xml, logback-tools.xml, cassandra-rackdc.properties,
                  jvm-server.options, jvm<major>-server.options
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

from seedsvc_devcluster.cassandra import cassandra_yaml, config_files, distribution, jvm, nodetool, release
from seedsvc_devcluster.cassandra.distribution import DIST_POM, ensure_distribution, jamm_agent
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.release import Release, release_for
from seedsvc_devcluster.images.cassandra_standin import rendering

FILES: Final = Path(__file__).resolve().parent / "files"
_SCRIPTS: Final = ("cassandra", "nodetool")
_STATIC_CONF: Final = ("logback.xml", "logback-tools.xml")


def stage_context(version: str, context: Path) -> None:
    """Fill ``context`` (created if missing, else it must be empty) with the stand-in's build context.

    Fetches the jars of ``version`` into the harness's cache first if they are not there. Raises
    :class:`CassandraHarnessError` for a release line whose server and nodetool need different Java
    majors (4.x: one JVM per image here) and for a non-empty ``context``.
    """
    release = release_for(version)
    if release.java_major != release.tool_java_major:
        raise CassandraHarnessError(
            f"Cassandra {version} runs on Java {release.java_major} but its nodetool on Java "
            f"{release.tool_java_major}; the stand-in image has one Java, so it takes 5.0 or 6.0 only"
        )
    context.mkdir(parents=True, exist_ok=True)
    if any(context.iterdir()):
        raise CassandraHarnessError(f"{context} is not empty; stage the stand-in into a new directory")
    lib = ensure_distribution(version) / "lib"
    home = context / "opt" / "cassandra"
    conf = context / "etc" / "cassandra"
    _link_jars(lib, home / "lib")
    _write_scripts(home / "bin", release=release, version=version, jamm_jar=jamm_agent(lib).name)
    _write_conf(conf, release=release, version=version)
    (context / rendering.CONTAINERFILE).write_text(rendering.render_containerfile(release=release, version=version))


def staging_inputs() -> tuple[Path, ...]:
    """Every file whose content decides what :func:`stage_context` writes, for a build's cache key.

    This package's own files, and the harness modules it takes its lists and text from: a key over
    this package alone would miss a new JVM option in jvm.py. With the version, these decide the
    context completely (the jars are those cassandra_dist/pom.xml resolves for that version).
    """
    package = Path(__file__).resolve().parent
    own = [path for path in package.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    harness = [
        Path(module.__file__ or "") for module in (cassandra_yaml, config_files, distribution, jvm, nodetool, release)
    ]
    return tuple(sorted({*own, *(path.resolve() for path in harness), DIST_POM}))


def _link_jars(source: Path, target: Path) -> None:
    """Hard links (no copy of ~70 MB) when the cache and the context share a file system."""
    target.mkdir(parents=True)
    for jar in sorted(source.glob("*.jar")):
        try:
            os.link(jar, target / jar.name)
        except OSError:  # another file system, or links not allowed there
            shutil.copy2(jar, target / jar.name)


def _write_scripts(bin_dir: Path, *, release: Release, version: str, jamm_jar: str) -> None:
    bin_dir.mkdir(parents=True)
    settings = rendering.render_script_settings(release=release, version=version, jamm_jar=jamm_jar)
    (bin_dir / "cassandra.in.sh").write_text(settings + (FILES / "cassandra.in.sh").read_text())
    for script in _SCRIPTS:
        shutil.copyfile(FILES / script, bin_dir / script)
        (bin_dir / script).chmod(0o755)


def _write_conf(conf: Path, *, release: Release, version: str) -> None:
    conf.mkdir(parents=True)
    (conf / "cassandra.yaml").write_text(rendering.render_default_yaml(release, version))
    (conf / "cassandra-rackdc.properties").write_text(rendering.render_rackdc())
    (conf / "jvm-server.options").write_text(rendering.render_server_options())
    (conf / rendering.options_file_name(release)).write_text(rendering.render_module_options(release))
    for name in _STATIC_CONF:
        shutil.copyfile(FILES / name, conf / name)

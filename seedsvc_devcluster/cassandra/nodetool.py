"""Running ``nodetool`` (a short-lived JVM) against one node's local JMX port."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Final

from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.release import Release

NODETOOL_MAIN_CLASS: Final = "org.apache.cassandra.tools.NodeTool"


def run_nodetool(
    *, java: Path, home: Path, release: Release, jmx_port: int, conf_dir: Path, args: tuple[str, ...], timeout: float
) -> str:
    """Run ``nodetool args`` with the server's jars; returns stdout, raises with the output on failure.

    ``java`` is the release's tool Java (17 for every line), not necessarily the server's.
    """
    logback = conf_dir / "logback-tools.xml"
    logback.write_text('<configuration><root level="OFF"/></configuration>\n')  # keep nodetool's stdout clean
    argv = [
        str(java),
        "-Xmx128m",
        "-XX:TieredStopAtLevel=1",  # a short-lived client: start-up is all that matters
        "-XX:+UseSerialGC",
        *release.tool_module_options,
        "-cp",
        f"{home / 'lib'}/*",
        "-Dlogback.configurationFile=" + logback.as_uri(),
        NODETOOL_MAIN_CLASS,
        "-h",
        "127.0.0.1",
        "-p",
        str(jmx_port),
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise CassandraHarnessError(f"nodetool {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    return proc.stdout

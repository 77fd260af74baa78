"""A tiny stand-in for the Cassandra stand-in base, for tests/test_images.py only.

It provides what deploy/images/cassandra.Dockerfile and its entrypoint rely on in the official image (a
`cassandra` user with UID 999, /etc/cassandra/cassandra.yaml, /opt/cassandra/lib, bash, awk), and no
Cassandra: the image tests run the entrypoint's rendering, never the database. The real base is
seedsvc_devcluster.images.cassandra_standin.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stage_context(version: str, context: Path) -> None:
    """Fill ``context`` with a Containerfile taking ``ARG JAVA_BASE`` and the files it copies."""
    shutil.copy2(HERE / "Containerfile", context / "Containerfile")
    shutil.copy2(HERE / "cassandra.yaml", context / "cassandra.yaml")
    (context / "VERSION").write_text(version + "\n")


def inputs() -> tuple[Path, ...]:
    """The files that decide what :func:`stage_context` writes."""
    return tuple(sorted(path for path in HERE.iterdir() if path.is_file() and path.suffix != ".pyc"))

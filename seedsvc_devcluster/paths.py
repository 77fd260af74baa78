"""Where things are in a checkout: the repository root and the files the local cluster runs from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
SHIM_JAR: Final = REPO_ROOT / "java-shim" / "target" / "seedsvc-cassandra-shim.jar"


def cache_dir(kind: str) -> Path:
    """``$SEEDSVC_CACHE_DIR/<kind>``, else ``$XDG_CACHE_HOME/seedsvc/<kind>``, else ``~/.cache/seedsvc/<kind>``.

    Built binaries and fetched jars live here, outside the checkout, so every worktree shares them.
    """
    explicit = os.environ.get("SEEDSVC_CACHE_DIR")
    if explicit:
        return Path(explicit) / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seedsvc" / kind

"""Where things are in a checkout: the repository root and the files the local cluster runs from it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEPLOY_DIR: Final = REPO_ROOT / "deploy"
SHIM_JAR: Final = REPO_ROOT / "java-shim" / "target" / "seedsvc-cassandra-shim.jar"

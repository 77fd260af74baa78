"""Cache keys: a short hash of everything that decides an image's content.

Each image's key covers its own recipe and its bases' keys, so changing the sidecar's sources rebuilds
the sidecar only, and changing a base's package list rebuilds everything above that base.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from seedsvc_devcluster import paths
from seedsvc_devcluster.images import dockerignore


def digest(*parts: str | bytes) -> str:
    """A 20-hex-digit key of ``parts``; each part is length-prefixed so that no two lists collide."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big") + data)
    return hasher.hexdigest()[:20]


def files_digest(root: Path, relative_paths: Iterable[str]) -> str:
    """Names, executable bits, symlink targets and contents of the files, in the order given."""
    parts: list[str | bytes] = []
    for relative in relative_paths:
        path = root / relative
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            parts += [relative, "link", os.readlink(path)]
        else:
            parts += [relative, "x" if info.st_mode & 0o111 else "-", path.read_bytes()]
    return digest(*parts)


def context_digest(root: Path, ignorefile: Path) -> str:
    """The build context ``root`` as the engine sends it: only the files ``ignorefile`` keeps."""
    patterns = dockerignore.parse(ignorefile.read_text())
    return files_digest(root, dockerignore.kept_files(root, patterns))


def paths_digest(files: Iterable[Path]) -> str:
    """Files named by path (a recipe's inputs); named relative to the checkout, so every worktree agrees."""
    root = paths.REPO_ROOT
    relative = sorted(
        str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path.resolve())
        for path in files
    )
    return files_digest(root, relative)

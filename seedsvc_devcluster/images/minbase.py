"""The Debian root of every base: ``debootstrap --variant=minbase``, imported into the store as an image.

debootstrap mounts /proc and /sys inside its target while packages configure; if it is killed those
mounts outlive it, so they are unmounted (deepest first) before the target is removed, whatever happened.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from seedsvc_devcluster.images import recipes
from seedsvc_devcluster.images.store import (
    ImageBuildError,
    Store,
    mounts_under,
    require,
    run_child,
    unmount_all,
)


def build(store: Store, reference: str, *, log: Path) -> None:
    """debootstrap into a temporary directory and commit it as ``reference``."""
    debootstrap = require("debootstrap", "debootstrap")
    work = Path(tempfile.mkdtemp(prefix="minbase-", dir=store.tmpdir))
    target = work / "rootfs"
    try:
        with log.open("ab") as out:
            returncode, _ = run_child(
                [debootstrap, f"--variant={recipes.VARIANT}", recipes.SUITE, str(target), recipes.MIRROR], stdout=out
            )
        if returncode != 0:
            raise ImageBuildError(f"debootstrap failed ({returncode}); see {log}")
        unmount_all(target)
        # Package caches are not part of an image; apt-get update refills the lists when a base needs them.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (target / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tarball = work / "rootfs.tar"
        archive = ["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(tarball), "."]
        returncode, output = run_child(archive)
        if returncode != 0:
            raise ImageBuildError(f"tar of the debootstrap tree failed ({returncode}): {output[-2000:]}")
        container = store.run(["from", "--name", f"minbase-{reference.rsplit(':', 1)[-1]}", "scratch"]).strip()
        store.run(["add", container, str(tarball), "/"])
        store.run(
            [
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                "/bin/bash",
                container,
            ]
        )
        store.run(["commit", "--rm", container, reference], log=log)
    finally:
        unmount_all(target)
        # Never walk into a /proc or /sys that is still mounted: leave the directory and say so.
        if mounts_under(work):
            raise ImageBuildError(f"could not unmount everything under {work}; unmount it by hand")
        shutil.rmtree(work, ignore_errors=True)

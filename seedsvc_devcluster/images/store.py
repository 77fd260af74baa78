"""The project's own image store: buildah with its storage under ``~/.cache/seedsvc/images/storage``.

Never /var/lib/containers: the store is the project's cache, shared by every worktree and removable at
will. The run root (locks and mount state) is a temporary directory per session, so a killed build
leaves nothing in /run; ``Store.session`` also removes working containers an earlier, killed session
left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

# runc, so that --network=none really is a network namespace with nothing in it. Builds use either that or
# the host network (apt, pip), never buildah's default bridge, which would add a CNI bridge and addresses
# from a private range to the machine.
ISOLATION: Final = "oci"
DRIVER: Final = "overlay"
# Generous bound for one command (a cold Java base downloads a few hundred MB); a hung one must end.
COMMAND_TIMEOUT_S: Final = 3600.0


class ImageBuildError(RuntimeError):
    """A prerequisite is missing or a build step failed; the message says which."""


def require(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ImageBuildError(f"`{tool}` is not on PATH; install it with `apt-get install {package}`")
    return found


@dataclass(frozen=True)
class Store:
    """buildah pointed at one storage root; every call goes through :meth:`run`."""

    root: Path
    runroot: Path
    tmpdir: Path

    def flags(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", DRIVER]

    def run(self, args: Sequence[str], *, log: Path | None = None) -> str:
        """Run ``buildah <flags> args``; output goes to ``log`` when given (long builds), else is returned."""
        command = [require("buildah", "buildah"), *self.flags(), *args]
        env = {**os.environ, "TMPDIR": str(self.tmpdir), "BUILDAH_ISOLATION": ISOLATION}
        if log is not None:
            with log.open("ab") as out:
                out.write(("\n$ " + " ".join(command) + "\n").encode())
                out.flush()
                returncode, output = run_child(command, env=env, stdout=out)
            detail = _tail(log)
        else:
            returncode, output = run_child(command, env=env)
            detail = output[-4000:]
        if returncode != 0:
            raise ImageBuildError(f"`buildah {' '.join(args)}` failed ({returncode}):\n{detail}")
        return output

    def has_image(self, reference: str) -> bool:
        try:
            self.run(["inspect", "--type", "image", "--format", "{{.FromImageID}}", reference])
        except ImageBuildError:
            return False
        return True


# How long a child has to clean up after SIGTERM (buildah removes its container and unmounts) before
# SIGKILL; generous because a loaded machine is slow, bounded because a wedged child must not hang us.
TERMINATE_GRACE_S: Final = 30.0


def run_child(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, stdout: IO[bytes] | None = None
) -> tuple[int, str]:
    """Run ``command`` to completion: (exit status, captured output unless ``stdout`` is given).

    If we are interrupted or time out, the child gets SIGTERM and a grace period first, so buildah and
    debootstrap can remove their containers and mounts; only then SIGKILL.
    """
    with subprocess.Popen(
        command,
        env=dict(env) if env is not None else None,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as child:
        try:
            output, _ = child.communicate(timeout=COMMAND_TIMEOUT_S)
        except BaseException as exc:
            child.terminate()
            try:
                child.wait(timeout=TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise ImageBuildError(f"`{command[0]}` did not finish within {COMMAND_TIMEOUT_S:.0f}s") from exc
            raise
    return child.returncode, (output or b"").decode(errors="replace")


def mounts_under(directory: Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below ``directory`` (from ``/proc/self/mountinfo`` text), deepest first."""
    text = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    prefix = str(directory).rstrip("/")
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def unmount_all(directory: Path) -> None:
    """Unmount everything at or below ``directory``, deepest first (lazily: a busy mount still goes)."""
    for point in mounts_under(directory):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True, timeout=60)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def session(root: Path) -> Iterator[Store]:
    """A store on ``root`` for the length of a ``with`` block; the caller holds the store's lock."""
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="seedsvc-images-"))
    store = Store(root=root, runroot=scratch / "run", tmpdir=scratch / "tmp")
    store.runroot.mkdir()
    store.tmpdir.mkdir()
    try:
        # Working containers of a build that was killed mid-way: nothing else uses this store now.
        store.run(["rm", "--all"])
        yield store
    finally:
        with contextlib.suppress(ImageBuildError, subprocess.SubprocessError):
            store.run(["rm", "--all"])
        # overlay keeps layers mounted while containers use them, and containers/storage bind-mounts
        # its overlay directory onto itself: nothing of the store stays mounted between sessions.
        with contextlib.suppress(ImageBuildError, subprocess.SubprocessError):
            store.run(["umount", "--all"])
        unmount_all(root)
        unmount_all(scratch)
        if not mounts_under(scratch):  # never walk into a /proc or /sys a killed debootstrap left mounted
            shutil.rmtree(scratch, ignore_errors=True)

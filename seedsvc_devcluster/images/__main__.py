"""``python -m seedsvc_devcluster.images build [--only NAME ...]``: build or find the images.

Prints one line per image, ``<name> <OCI archive path>``. Exit 2 (one line on stderr) for a bad
argument, 1 when a build fails.
"""

from __future__ import annotations

import argparse
import signal
import sys

from seedsvc_devcluster.images import recipes
from seedsvc_devcluster.images.building import ensure_images
from seedsvc_devcluster.images.store import ImageBuildError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line naming the bad value, not argparse's usage block.
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m seedsvc_devcluster.images")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    build = commands.add_parser("build", help="build (or find cached) images and print their OCI archives")
    build.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=recipes.FINAL_NAMES,
        default=None,
        help=f"images to build: {', '.join(recipes.FINAL_NAMES)} (default: all)",
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the build's clean-up runs: the child buildah or debootstrap is
    # stopped, working containers removed, mounts and temporary directories released.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        images = ensure_images(args.only or recipes.FINAL_NAMES)
    except ImageBuildError as exc:
        print(f"image build failed: {exc}", file=sys.stderr)
        return 1
    for image in images.by_name.values():
        print(image.name, image.archive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

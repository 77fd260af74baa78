"""``python -m seedsvc_devcluster.cassandra``: fetch the distribution, or run one node in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from seedsvc_devcluster.cassandra import __doc__ as PACKAGE_DOC
from seedsvc_devcluster.cassandra.distribution import ensure_distribution
from seedsvc_devcluster.cassandra.errors import CassandraHarnessError
from seedsvc_devcluster.cassandra.node import CassandraNode
from seedsvc_devcluster.cassandra.release import DEFAULT_VERSION, RELEASES, release_for


def _cmd_fetch(args: argparse.Namespace) -> int:
    versions = [args.version] if args.version else [release.version for release in RELEASES]
    for version in versions:
        started = time.monotonic()
        home = ensure_distribution(version)
        jars = len(list((home / "lib").glob("*.jar")))
        print(home)
        print(f"{version}: {jars} jars, ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def _known_version(value: str) -> str:
    """argparse type: a version of a line the harness runs (bad input: exit 2 naming the value)."""
    try:
        release_for(value)
    except CassandraHarnessError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_run(args: argparse.Namespace) -> int:
    # SIGTERM, and SIGINT even where a non-interactive shell started us with it ignored, stop the
    # node cleanly through the finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    node = CassandraNode(
        args.address, args.data_dir, seeds=args.seeds.split(",") if args.seeds else None, version=args.version
    )
    node.start()
    try:
        seconds = node.wait_for_cql(args.timeout)
        print(
            f"{node.address}:9042 up after {seconds:.1f}s, RSS {node.rss_bytes() / 2**20:.0f} MiB, "
            f"log {node.log_path}; Ctrl-C stops it",
            file=sys.stderr,
        )
        while node.is_running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m seedsvc_devcluster.cassandra",
        description=PACKAGE_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lines = ", ".join(f"{r.line} ({r.version})" for r in RELEASES)
    fetch = sub.add_parser("fetch", help="download distributions if needed, print their directories")
    fetch.add_argument(
        "--version", type=_known_version, default=None, help=f"one cassandra-all version; default: every line, {lines}"
    )
    run = sub.add_parser("run", help="run one node in the foreground")
    run.add_argument(
        "--version", type=_known_version, default=DEFAULT_VERSION, help=f"cassandra-all version of a line: {lines}"
    )
    run.add_argument("--address", default="127.0.0.1")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("--seeds", default="", help="comma-separated; default: the node itself")
    run.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        return {"fetch": _cmd_fetch, "run": _cmd_run}[args.command](args)
    except CassandraHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

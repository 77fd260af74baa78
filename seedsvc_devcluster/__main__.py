"""``python -m seedsvc_devcluster``: the local cluster by hand.

    up            control plane + kubelet stand-in in the background; prints the kubeconfig
    statefulset   deploy/'s StatefulSet on it, a real seedsvc sidecar per pod (foreground, Ctrl-C ends)
    ring          the same with a real Cassandra node per pod: a ring formed through seedsvc
    down          stop everything `up` started (found by <dir>/up.json)

All take --dir (default: $TMPDIR/seedsvc-devcluster). Nothing listens outside 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from seedsvc_devcluster import statefulset_run, up
from seedsvc_devcluster.controlplane import ControlPlaneError
from seedsvc_devcluster.system import SystemUnavailable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad input: one line naming the flag and the value, exit status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(flag: str, kind: type[int] | type[float], *, zero_ok: bool = False) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"{flag} must be {'>= 0' if zero_ok else '> 0'}, got {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m seedsvc_devcluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = _Parser(add_help=False)
    common.add_argument("--dir", type=Path, default=up.DEFAULT_DIR, help="state directory (default: %(default)s)")
    commands = "{up,statefulset,ring,down}"  # `supervise` is up's own, not for people
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar=commands)
    start = sub.add_parser("up", parents=[common], help="start the control plane and kubelet stand-in")
    start.add_argument("--timeout", type=_positive("--timeout", float), default=up.UP_TIMEOUT_S)
    sub.add_parser("down", parents=[common], help="stop what `up` started")
    for name, what in (("statefulset", "sidecars only"), ("ring", "sidecars and Cassandra nodes")):
        run = sub.add_parser(name, parents=[common], help=f"deploy/'s StatefulSet with {what}")
        run.add_argument("--replicas", type=_positive("--replicas", int), default=3)
        run.add_argument("--namespace", default=name, help="created, and deleted on exit (default: %(default)s)")
        run.add_argument(
            "--for",
            dest="hold_s",
            type=_positive("--for", float, zero_ok=True),
            default=None,
            help="seconds to keep running once everything serves (default: until Ctrl-C)",
        )
    sub.add_parser("supervise", parents=[common])  # the background process of `up`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    directory: Path = args.dir.resolve()
    try:
        if args.command == "supervise":
            return up.supervise(directory)
        if args.command == "up":
            state = up.up(directory, args.timeout)
            print(f"local cluster up (control plane started in {state.startup_seconds:.1f}s)")
            print(f"  kubeconfig: {state.kubeconfig}")
            print(f"  server:     {state.server}")
            print(f"  dns:        {state.dns}")
            print(f"  export KUBECONFIG={state.kubeconfig}; {state.kubectl} get nodes")
            print(f"  next: python -m seedsvc_devcluster statefulset --dir {directory}   (or ring)")
            print(f"  stop: python -m seedsvc_devcluster down --dir {directory}")
            return 0
        if args.command == "down":
            stopped = up.down(directory)
            print(f"stopped the local cluster (pid {stopped.pid})" if stopped else f"nothing is up in {directory}")
            return 0
        statefulset_run.run(
            directory,
            namespace=args.namespace,
            replicas=args.replicas,
            cassandra=args.command == "ring",
            hold_s=args.hold_s,
        )
        return 0
    except (up.UpError, ControlPlaneError, SystemUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

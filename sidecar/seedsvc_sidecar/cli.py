"""The ``seedsvc`` command: ``serve``, ``seeds`` and ``check`` (docs/design.md section 4).

Every option comes from :data:`seedsvc.settings.OPTIONS`, with its environment variable and default
in the help. argparse only collects raw strings (default None); :func:`seedsvc.settings.load`
validates them, so "flag wins over env" and the one-line error for a bad value hold for flags and
variables alike. Exit status: 0 success, 1 the command could not do its job, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from seedsvc import __version__, values
from seedsvc.options import Option
from seedsvc.seedlist import seeds_document
from seedsvc.settings import OPTIONS, ConfigError, Settings, load
from seedsvc.sources.checks import Check
from seedsvc_sidecar.logs import setup_logging

log = logging.getLogger("seedsvc.cli")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
SEEDS_TIMEOUT = 10.0
"""Default bound of ``seedsvc seeds`` and ``seedsvc check``: a few watch or DNS round trips."""


def option_help(option: Option) -> str:
    text = f"{option.help} [env: {', '.join(option.envs)}, default: {option.default_text}]"
    return text.replace("%", "%%")  # argparse formats help with %


def _add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from its environment variable)")
    for option in OPTIONS:
        group.add_argument(option.flag, dest=option.name, metavar=option.metavar, default=None,
                           help=option_help(option))


def _positive_seconds(text: str) -> float:
    # The settings' own parser: ASCII decimal only, no nan, inf, 1_0 or full-width digits.
    try:
        value = values.seconds(0, 3600)(text)
    except ValueError:
        value = 0.0
    if value == 0:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: must be above 0 and at most 3600")
    return value


def build_parser() -> argparse.ArgumentParser:
    table = "\n".join(f"  {o.flag:<26} {', '.join(o.envs)}" for o in OPTIONS)
    parser = argparse.ArgumentParser(
        prog="seedsvc",
        description="Kubernetes-aware seed discovery for Apache Cassandra.",
        epilog=f"settings of every command (flag, then environment variable; a flag wins):\n{table}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"seedsvc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # No abbreviations: "--seed" must not silently mean --seeds, nor "--dns" fail as ambiguous.
    serve = commands.add_parser("serve", help="run the sidecar: discovery plus the HTTP API", allow_abbrev=False)
    _add_options(serve)
    seeds = commands.add_parser("seeds", allow_abbrev=False,
                                help="print the current seed list once (with --datacenter, each peer DC asked once)")
    seeds.add_argument("--json", action="store_true",
                       help="print the JSON document of GET /seeds?format=json instead")
    seeds.add_argument("--timeout", type=_positive_seconds, default=SEEDS_TIMEOUT, metavar="SECONDS",
                       help=f"give up after this long (default: {SEEDS_TIMEOUT:g})")
    _add_options(seeds)
    check = commands.add_parser("check", help="diagnose access to the API server or DNS; exit 1 on failure",
                                allow_abbrev=False)
    check.add_argument("--timeout", type=_positive_seconds, default=30.0, metavar="SECONDS",
                       help="bound on all checks together (default: 30)")
    _add_options(check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, argparse's own usage errors (status 2)
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    flags = {option.name: getattr(args, option.name) for option in OPTIONS}
    try:
        settings = load(flags, os.environ)
    except ConfigError as exc:
        print(f"seedsvc: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(log_format=settings.logging.format, level=settings.logging.level)
    try:
        if args.command == "serve":
            from seedsvc_sidecar.service import serve

            return asyncio.run(serve(settings))
        if args.command == "seeds":
            return asyncio.run(_seeds(settings, as_json=args.json, timeout=args.timeout))
        return asyncio.run(_check(settings, timeout=args.timeout))
    except ConfigError as exc:  # a source may find a setting unusable only when it is built
        print(f"seedsvc: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.command == "serve":
            raise  # the sidecar's own crash belongs in its log with the traceback
        # A bug, not a configuration or network problem (those are reported above or by the checks):
        # one line for the person at the terminal, the traceback only in a debug log.
        log.debug("unexpected error", exc_info=True)
        print(f"seedsvc: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILED


async def _seeds(settings: Settings, *, as_json: bool, timeout: float) -> int:
    from seedsvc.api import SeedsUnavailable, current_seeds

    try:
        found = await current_seeds(settings, timeout=timeout)
    except SeedsUnavailable as exc:
        print(f"seedsvc: no seed list: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILED
    if as_json:
        print(json.dumps(seeds_document(found), indent=2))
    else:
        print(",".join(found.seeds))
    return EXIT_OK


async def _check(settings: Settings, *, timeout: float) -> int:
    from seedsvc.sources.factory import diagnose

    try:
        async with asyncio.timeout(timeout):
            results = await diagnose(settings)
    except TimeoutError:
        results = [Check("checks finished", False, f"not within {timeout:g}s; is the peer reachable?")]
    except ConfigError:
        raise
    except Exception as exc:  # a check must report, never crash: the output stays one line per check
        log.debug("check failed unexpectedly", exc_info=True)
        results = [Check("checks finished", False, f"{type(exc).__name__}: {' '.join(str(exc).split())}")]
    for result in results:
        print(f"{'ok' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    return EXIT_OK if results and all(result.ok for result in results) else EXIT_FAILED

"""`minimeter`: the top-level parser and entry point; each subcommand is a module of
`twin.cli` with ``add_arguments(parser)`` and ``main(args)``.

Errors the user can fix (bad options, bad profiles, unusable state) print one line
naming what was wrong and what was expected, and exit with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from twin import __version__
from twin.errors import TwinError
from twin.forking import interrupts_held

# subcommand -> one-line help; its module of twin.cli has add_arguments(parser) and
# main(args), and is imported when used (_command): `simulate` loads no servers.
SUBCOMMANDS: dict[str, str] = {
    "run": "run the live twin: serve the meter over Modbus TCP/RTU",
    "simulate": "run a profile through the meter as fast as possible",
    "profiles": "list, show and check load profiles",
    "registers": "print the register map (md, csv or json)",
    "mirror": "follow and cross-check a physical meter's pulse output",
    "fleet": "plan how a fleet file is split into shards (--shard I/N)",
}


def _command(name: str) -> ModuleType:
    """The module of subcommand ``name``, imported now."""
    if name == "run":
        from twin.cli import run

        return run
    if name == "simulate":
        from twin.cli import simulate

        return simulate
    if name == "profiles":
        from twin.cli import profiles

        return profiles
    if name == "registers":
        from twin.cli import registers

        return registers
    if name == "mirror":
        from twin.cli import mirror

        return mirror
    from twin.cli import fleet

    return fleet


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on bad usage; the project promises 1 for bad input.
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand's options, or only those of ``only``."""
    parser = _Parser(prog="minimeter", description="Leviton Mini Meter digital twin")
    parser.add_argument("--version", action="version", version=f"minimeter {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = _command(name)
            module.add_arguments(p)
            p.set_defaults(_handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The first word that is not an option names the command (the top-level options
    # take no value); anything else gets the whole parser, e.g. for --help.
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        with interrupts_held():  # building the parser imports the command's modules
            parser = build_parser(command if command in SUBCOMMANDS else None)
    except KeyboardInterrupt:
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help()
        return 1
    try:
        return int(handler(args))
    except TwinError as exc:
        print(f"minimeter {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`minimeter ... | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1

"""`minimeter registers`: print the register map (the same table as docs/registers.md).

The table comes from :func:`twin.registers.render_table`, so the printed map, the
docs and the served image cannot disagree.
"""

from __future__ import annotations

import argparse
import sys

from twin.registers import render_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("md", "csv", "json"),
        default="md",
        help="output format (default md: the text of docs/registers.md)",
    )


def main(args: argparse.Namespace) -> int:
    sys.stdout.write(render_table(args.format))
    return 0

"""`minimeter`, the command line: `run` (the live twin), `simulate` (a profile through
the meter, as fast as possible), `profiles` and `registers`, one module each; `main`
parses and dispatches, and turns every error the user can fix into one line, exit 1.
"""

from twin.cli.main import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

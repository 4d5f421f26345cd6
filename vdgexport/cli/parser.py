"""The ``vdgexport`` argument parser, and the list of its commands.

A command is one module of this package with ``register(commands, options)``: it adds its
parser to ``commands`` (taking the shared options it needs as parents, see
`vdgexport.cli.options`) and sets ``run``, a function of the parsed arguments returning the
exit code, with ``set_defaults(run=...)``. Adding a command is that module plus one entry in
`COMMANDS`. A command whose packages are an extra imports them inside ``run``, so that
``--help`` works without them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Protocol

from . import demo, publish, serve, simulate, status, watch
from .options import EXIT_CODES, Options, make_options

__all__ = ["COMMANDS", "Command", "build_parser"]


class Command(Protocol):
    """What a command module provides."""

    def register(self, commands: Any, options: Options) -> None:
        """Add the command's parser to ``commands`` (an argparse subparsers action)."""


#: Every command, in the order ``--help`` lists them.
COMMANDS: Sequence[Command] = (demo, status, watch, simulate, serve, publish)

_EPILOG = f"""\
environment:
  VDG_URL       stands in for --url
  VDG_PASSWORD  the password of --user (otherwise it is asked for, hidden)

{EXIT_CODES}"""


def build_parser(*, version: str) -> argparse.ArgumentParser:
    """The argument parser: one subcommand each, their options after it."""
    parser = argparse.ArgumentParser(
        prog="vdgexport",
        description="Watch video exports on VDG Sense servers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vdgexport {version}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    options = make_options()
    for command in COMMANDS:
        command.register(commands, options)
    return parser

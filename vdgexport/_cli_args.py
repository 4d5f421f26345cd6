"""The ``vdgexport`` argument parser: one subcommand each, their options after it."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["build_parser"]

_EPILOG = """\
environment:
  VDG_URL       stands in for --url
  VDG_PASSWORD  the password of --user (otherwise it is asked for, hidden)

exit codes:
  0 every export completed, 3 one was removed, 4 one vanished,
  1 another error, 2 bad usage
"""


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
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help=argparse.SUPPRESS
    )
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("VDG_URL"),
        help="the server, http://host[:port][/prefix] (default: $VDG_URL)",
    )
    server.add_argument(
        "--user",
        metavar="NAME",
        help="log in as NAME; the password comes from $VDG_PASSWORD or a hidden prompt",
    )
    server.add_argument(
        "--login",
        choices=("session", "basic"),
        default="session",
        help="how --user logs in: the /webservice session (default) or HTTP Basic",
    )
    server.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="fastest poll interval, and first retry delay (default: 1)",
    )
    server.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="time limit of one request (default: 10)",
    )
    _add_demo(commands, common)
    _add_status(commands, common, server)
    _add_watch(commands, common, server)
    _add_simulate(commands)
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _add_demo(commands: Any, common: argparse.ArgumentParser) -> None:
    cmd = commands.add_parser(
        "demo",
        parents=[common],
        help="watch exports on the built-in simulator",
        description="Start the simulator in-process with several exports, remove one, "
        "restart its PluginManager so another vanishes, and watch them all. "
        "Takes about 15 seconds; exits 0.",
    )
    cmd.add_argument(
        "--speed",
        type=_positive,
        default=10.0,
        metavar="X",
        help="simulated seconds per real second (default: 10)",
    )


def _add_status(
    commands: Any, common: argparse.ArgumentParser, server: argparse.ArgumentParser
) -> None:
    cmd = commands.add_parser(
        "status",
        parents=[common, server],
        help="show exports, or one export's devices",
        description="A table of every export, or of one export and its devices. "
        "--json prints one JSON document.",
    )
    cmd.add_argument("export_id", nargs="?", metavar="ID", help="one export id")
    cmd.set_defaults(needs_url=True)


def _add_watch(
    commands: Any, common: argparse.ArgumentParser, server: argparse.ArgumentParser
) -> None:
    cmd = commands.add_parser(
        "watch",
        parents=[common, server],
        help="follow exports until they end",
        description="Live progress until every export ends. --json prints JSON Lines: one "
        'object per event, with its "type" and every field.',
        epilog="exit codes: 0 all completed, 3 one was removed, 4 one vanished, "
        "1 another error, 2 bad usage",
    )
    cmd.add_argument("export_ids", nargs="+", metavar="ID", help="export ids to watch")
    cmd.add_argument(
        "--outage-timeout",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="give up after the server failed this long (default: 300)",
    )
    cmd.set_defaults(needs_url=True)


def _add_simulate(commands: Any) -> None:
    from ._cli_sim import CONTROL_HELP

    cmd = commands.add_parser(
        "simulate",
        help="serve the simulator over HTTP",
        description="Serve a simulated SensePluginManager over real HTTP, for curl or your "
        "own code. Stop it with Ctrl-C.",
        epilog=CONTROL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    cmd.add_argument(
        "--port",
        type=_count,
        default=8080,
        help="port to listen on; 0 picks a free one (default: 8080)",
    )
    cmd.add_argument(
        "--exports", type=_count, default=5, metavar="N", help="exports to start with (default: 5)"
    )
    cmd.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default: 1)",
    )

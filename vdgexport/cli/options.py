"""Options that several commands share, and the types of their values.

A command takes them with ``parents=[options.output, options.server]`` when it adds its
parser (see `vdgexport.cli.parser`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

__all__ = ["EXIT_CODES", "Options", "count", "make_options", "positive"]

EXIT_CODES = """\
exit codes:
  0  every export completed
  3  one was removed
  4  one vanished (4 wins over 3 when both happen)
  1  another error (the server unreachable, a refused login, ...)
  2  bad usage
"""


@dataclass(frozen=True)
class Options:
    """The parent parsers of the shared options.

    Attributes:
        output: ``--json``, ``-v/--verbose`` (and the hidden ``--backend``).
        server: the connection to a VDG server: ``--url``, ``--user``, ``--login``,
            ``--interval`` (the fastest pace), ``--timeout``, ``--ca-cert``, ``--insecure``.
    """

    output: argparse.ArgumentParser
    server: argparse.ArgumentParser


def positive(text: str) -> float:
    """A finite number above zero (an argparse ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def count(text: str) -> int:
    """A whole number, zero or more (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def make_options() -> Options:
    """New parent parsers (argparse copies their actions into each command)."""
    return Options(output=_output(), server=_server())


def _output() -> argparse.ArgumentParser:
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of text")
    output.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each request and retry on stderr",
    )
    output.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help=argparse.SUPPRESS
    )
    return output


def _server() -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        default=os.environ.get("VDG_URL"),
        help="the server, http(s)://host[:port][/prefix] (default: $VDG_URL)",
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
        type=positive,
        default=1.0,
        metavar="SECONDS",
        help="fastest poll interval, and first retry delay (default: 1)",
    )
    server.add_argument(
        "--timeout",
        type=positive,
        default=10.0,
        metavar="SECONDS",
        help="time limit of one request (default: 10)",
    )
    tls = server.add_mutually_exclusive_group()
    tls.add_argument(
        "--ca-cert",
        metavar="PATH",
        help="for https://, trust the CA certificates in PATH (a PEM file or a directory), "
        "e.g. the private CA of a VMS server",
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="for https://, do not check the server's certificate at all (self-signed "
        "test servers only)",
    )
    server.set_defaults(needs_url=True)
    return server

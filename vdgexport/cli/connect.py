"""A `vdgexport.Client` made from the shared options, and watches run side by side."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import httpx

import vdgexport

from .common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REMOVED,
    EXIT_USAGE,
    EXIT_VANISHED,
    error,
    is_terminal,
    one_line,
)

if TYPE_CHECKING:
    from rich.console import Console

    from .options import Options
    from .views import View

__all__ = ["add_server_command", "exit_code", "make_client", "run_watches", "with_client"]

ClientCommand = Callable[[vdgexport.Client, argparse.Namespace, "Console"], Awaitable[int]]


def add_server_command(
    commands: Any, options: Options, name: str, summary: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` that talks to a VDG server: it takes the output and
    server options (``--json``, ``--url``, ``--user``, ...); ``summary`` is its line in
    the list of commands, ``epilog`` (its exit codes) is shown as written."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        parents=[options.output, options.server],
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _auth(args: argparse.Namespace) -> httpx.Auth | tuple[str, str] | None:
    if not args.user:
        return None
    password = os.environ.get("VDG_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {args.user}: ")
    if args.login == "session":
        return vdgexport.SessionAuth(args.user, password)
    return (args.user, password)


def make_client(args: argparse.Namespace, **options: Any) -> vdgexport.Client:
    """A client of ``--url`` with the shared options (``options`` add to or override them)."""
    settings: dict[str, Any] = {
        "auth": _auth(args),
        "verify": False if args.insecure else (args.ca_cert or True),
        "timeout": args.timeout,
        "poll_interval": args.interval,
        "max_poll_interval": max(args.interval, 10.0),
        **options,
    }
    return vdgexport.Client(args.url, **settings)


def with_client(args: argparse.Namespace, command: ClientCommand, **options: Any) -> int:
    """Run ``command`` with a client of ``--url``; a `VdgError` becomes one line and 1.

    Options the client refuses (a URL that is not http(s), a CA bundle that cannot be
    read) are bad usage: one line and 2.
    """
    from .common import make_console

    try:
        client = make_client(args, **options)
    except ValueError as exc:
        print(f"vdgexport {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    console = make_console()

    async def run() -> int | vdgexport.VdgError:
        async with client:
            # Caught inside the block: the client's task group would wrap it in a group.
            try:
                return await command(client, args, console)
            except vdgexport.VdgError as exc:
                return exc

    result = anyio.run(run, backend=args.backend)
    if isinstance(result, vdgexport.VdgError):
        error(one_line(result))
        return EXIT_ERROR
    return result


async def run_watches(
    client: vdgexport.Client,
    export_ids: Sequence[str],
    view: View,
    observe: Callable[[vdgexport.WatchEvent], None] | None = None,
) -> dict[str, vdgexport.TerminalEvent]:
    """Watch every id at once in one task group and return the terminal event of each.

    Every event goes to ``view`` (then ``observe``). The first `VdgError` of any watch
    stops all of them and is raised.
    """
    outcomes: dict[str, vdgexport.TerminalEvent] = {}
    errors: list[vdgexport.VdgError] = []

    async def watch_one(export_id: str, scope: anyio.CancelScope) -> None:
        try:
            async with client.watch(export_id) as events:
                async for event in events:
                    view.on_event(event)
                    if observe is not None:
                        observe(event)
                    if is_terminal(event):
                        outcomes[export_id] = event
        except vdgexport.VdgError as exc:
            errors.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tasks:
        for export_id in export_ids:
            tasks.start_soon(watch_one, export_id, tasks.cancel_scope)
    if errors:
        raise errors[0]
    return outcomes


def exit_code(outcomes: Iterable[vdgexport.TerminalEvent]) -> int:
    """4 if any export vanished, else 3 if any was removed, else 0."""
    events = list(outcomes)
    if any(isinstance(e, vdgexport.ExportVanished) for e in events):
        return EXIT_VANISHED
    if any(isinstance(e, vdgexport.ExportRemoved) for e in events):
        return EXIT_REMOVED
    return EXIT_OK

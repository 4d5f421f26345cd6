"""``vdgexport watch ID...``: follow exports until each one ends."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

import vdgexport

from .connect import add_server_command, exit_code, run_watches, with_client
from .options import EXIT_CODES, Options, positive

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register", "run"]

_SUMMARY = "follow exports until they end"
_DESCRIPTION = (
    "Live progress until every export ends. --json prints JSON Lines: one object per event, "
    'with its "type" and every field.'
)


def register(commands: Any, options: Options) -> None:
    """Add ``watch`` to ``commands``."""
    cmd = add_server_command(commands, options, "watch", _SUMMARY, _DESCRIPTION, EXIT_CODES)
    cmd.add_argument("export_ids", nargs="+", metavar="ID", help="export ids to watch")
    cmd.add_argument(
        "--outage-timeout",
        type=positive,
        default=300.0,
        metavar="SECONDS",
        help="give up after the server failed this long (default: 300)",
    )
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Watch every id given until each ends; return the exit code of their outcomes."""
    return with_client(args, _watch, outage_timeout=args.outage_timeout)


async def _watch(client: vdgexport.Client, args: argparse.Namespace, console: Console) -> int:
    from .views import Board, make_view

    ids = list(dict.fromkeys(args.export_ids))
    # Fail fast on a wrong URL or credentials, before any live display; -57 is an
    # outcome, not an error: the watch reports it as vanished.
    with contextlib.suppress(vdgexport.ExportNotFoundError):
        await client.get_export(ids[0])
    board = Board(ids, title=f"Watching {len(ids)} export(s)")
    view = make_view(console, board, json=args.json)
    with view:
        outcomes = await run_watches(client, ids, view)
    view.summary()
    return exit_code(outcomes.values())

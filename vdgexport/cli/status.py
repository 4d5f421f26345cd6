"""``vdgexport status [ID]``: a table of every export, or of one export and its devices."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import vdgexport

from .common import EXIT_ERROR, EXIT_OK, dumps, error
from .connect import add_server_command, with_client
from .options import Options

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register", "run"]

_SUMMARY = "show exports, or one export's devices"
_DESCRIPTION = (
    "A table of every export, or of one export and its devices. --json prints one JSON document."
)
_EXIT_CODES = """\
exit codes:
  0  the server answered
  1  an error: no export has that id, the server unreachable, a refused login, ...
  2  bad usage
(watch, not status, exits 3 or 4 when an export is removed or vanishes)
"""


def register(commands: Any, options: Options) -> None:
    """Add ``status`` to ``commands``."""
    cmd = add_server_command(commands, options, "status", _SUMMARY, _DESCRIPTION, _EXIT_CODES)
    cmd.add_argument("export_id", nargs="?", metavar="ID", help="one export id")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON) of ``--url``'s exports; return the exit code."""
    return with_client(args, _status)


async def _status(client: vdgexport.Client, args: argparse.Namespace, console: Console) -> int:
    if args.export_id is None:
        return _print_list(await client.list_exports(), args, console)
    try:
        export = await client.get_export(args.export_id)
    except vdgexport.ExportNotFoundError:
        error(
            f"no export has id {args.export_id} on {client.base_url} "
            "(export ids are reset when the PluginManager restarts)"
        )
        return EXIT_ERROR
    if args.json:
        print(dumps(vdgexport.export_to_dict(export)))
        return EXIT_OK
    from .views import print_devices, print_table

    print_table(
        console,
        ("export", "status", "progress", "bandwidth", "path"),
        [_cells(export)],
        title=f"Export {export.export_id}",
        style_column=1,
        squeeze_column=4,
    )
    print_devices(console, export)
    return EXIT_OK


def _cells(export: vdgexport.Export) -> tuple[str, str, str, str, str]:
    from .views import fmt_bandwidth, state_of

    ended = export.status in (vdgexport.ExportStatus.COMPLETED, vdgexport.ExportStatus.REMOVED)
    return (
        export.export_id,
        state_of(export.status),
        f"{export.progress:.1f}%",
        "-" if ended else fmt_bandwidth(export.bandwidth_kbps),
        export.path,
    )


def _print_list(exports: vdgexport.ExportList, args: argparse.Namespace, console: Console) -> int:
    if args.json:
        doc = {"count": exports.count, "exports": [vdgexport.export_to_dict(e) for e in exports]}
        print(dumps(doc))
        return EXIT_OK
    from .views import print_table

    rows = []
    for export in exports:
        number, state, progress, bandwidth, path = _cells(export)
        rows.append((number, state, progress, str(len(export.devices)), bandwidth, path))
    print_table(
        console,
        ("export", "status", "progress", "devices", "bandwidth", "path"),
        rows,
        title=f"{len(rows)} export{'' if len(rows) == 1 else 's'}",
        style_column=1,
        squeeze_column=5,
    )
    return EXIT_OK

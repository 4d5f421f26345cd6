"""``vdgexport status [ID]``: a table of every export, or of one export and its devices."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

import vdgexport

from .common import EXIT_OK
from .connect import with_client
from .options import EXIT_CODES, Options

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register", "run"]


def register(commands: Any, options: Options) -> None:
    """Add ``status`` to ``commands``."""
    cmd = commands.add_parser(
        "status",
        parents=[options.output, options.server],
        help="show exports, or one export's devices",
        description="A table of every export, or of one export and its devices. "
        "--json prints one JSON document.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("export_id", nargs="?", metavar="ID", help="one export id")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the table (or JSON) of ``--url``'s exports; return the exit code."""
    return with_client(args, _status)


async def _status(client: vdgexport.Client, args: argparse.Namespace, console: Console) -> int:
    from .jsonout import dumps, export_json, export_list_json
    from .views import fmt_bandwidth, print_table

    if args.export_id is not None:
        export = await client.get_export(args.export_id)
        if args.json:
            print(dumps(export_json(export)))
            return EXIT_OK
        print_table(
            console,
            ("export", "status", "progress", "bandwidth", "path"),
            [
                (
                    export.export_id,
                    export.status.value,
                    f"{export.progress:.1f}%",
                    fmt_bandwidth(export.bandwidth_kbps),
                    export.path,
                )
            ],
            title=f"Export {export.export_id}",
            style_column=1,
        )
        rows = [
            (
                d.server_id,
                d.device_id,
                _when(d.start_time),
                _when(d.end_time),
                f"{d.progress:.1f}%",
                d.status.value,
            )
            for d in export.devices
        ]
        print_table(
            console,
            ("server", "device", "start (UTC)", "end (UTC)", "progress", "status"),
            rows,
            title="Devices",
            style_column=5,
        )
        return EXIT_OK
    exports = await client.list_exports()
    if args.json:
        print(dumps(export_list_json(exports)))
        return EXIT_OK
    rows = [
        (
            e.export_id,
            e.status.value,
            f"{e.progress:.1f}%",
            str(len(e.devices)),
            fmt_bandwidth(e.bandwidth_kbps),
            e.path,
        )
        for e in exports
    ]
    print_table(
        console,
        ("export", "status", "progress", "devices", "bandwidth", "path"),
        rows,
        title=f"{len(rows)} exports",
        style_column=1,
    )
    return EXIT_OK


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")

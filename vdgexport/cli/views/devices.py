"""The devices of one export, each UID whole at any terminal width."""

from __future__ import annotations

from datetime import datetime
from itertools import groupby

from rich.console import Console
from rich.text import Text

import vdgexport

from .format import state_of, style_of
from .table import print_table

__all__ = ["device_state", "print_devices"]

_HEADERS = ("server", "device", "start (UTC)", "end (UTC)", "progress", "status")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def device_state(export: vdgexport.Export, device: vdgexport.DeviceExport) -> str:
    """A device's status; the export's own once the export was removed."""
    if export.status is vdgexport.ExportStatus.REMOVED:
        return state_of(export.status)
    return state_of(device.status)


def print_devices(console: Console, export: vdgexport.Export) -> None:
    """A table of the devices, or on a terminal too narrow for it, a block per server."""
    rows = [
        (
            d.server_id,
            d.device_id,
            _when(d.start_time),
            _when(d.end_time),
            f"{d.progress:.1f}%",
            device_state(export, d),
        )
        for d in export.devices
    ]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADERS)]
    if not console.is_terminal or sum(widths) + 3 * (len(widths) - 1) <= console.width:
        print_table(console, _HEADERS, rows, title="Devices", style_column=5)
        return
    console.print(Text("Devices", style="italic"))
    for server, group in groupby(rows, key=lambda r: r[0]):
        console.print(Text.assemble("server ", (server, "bold")), no_wrap=True, crop=False)
        for _, device, start, end, progress, state in group:
            console.print(
                Text.assemble(
                    "  ", device, "  ", (f"{progress:>6}", ""), "  ", (state, style_of(state))
                ),
                no_wrap=True,
                crop=False,
            )
            console.print(Text(f"    {start} → {end} UTC", style="dim"), no_wrap=True, crop=False)

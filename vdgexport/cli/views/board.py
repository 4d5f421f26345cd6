"""The state of every watched export, and how it renders as a live table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

import vdgexport

from .format import STYLES, fmt_bandwidth, fmt_eta, outcome_of, progress_bar, short_uid

__all__ = ["Board", "DeviceRow", "ExportRow"]


@dataclass
class DeviceRow:
    """What is known of one device of a watched export."""

    device_id: str
    progress: float = 0.0
    status: str = "waiting"
    eta: timedelta | None = None
    step: int = -1  # the last 10 % step printed as a plain line


@dataclass
class ExportRow:
    """What is known of one watched export."""

    export_id: str
    path: str = ""
    status: str = "waiting"
    bandwidth_kbps: float | None = None
    devices: dict[tuple[str, str], DeviceRow] = field(default_factory=dict)
    outcome: str | None = None

    @property
    def progress(self) -> float:
        """Mean progress of the devices seen so far."""
        rows = self.devices.values()
        return sum(d.progress for d in rows) / len(rows) if rows else 0.0

    @property
    def eta(self) -> timedelta | None:
        """The longest device ETA, ``None`` while any moving device has none."""
        moving = [d for d in self.devices.values() if d.status != "COMPLETED"]
        if self.outcome or not moving or any(d.eta is None for d in moving):
            return None
        return max(d.eta for d in moving if d.eta is not None)

    def take(self, export: vdgexport.Export) -> None:
        """Adopt what a whole `Export` says (path, status, bandwidth, device list)."""
        self.path, self.status = export.path, export.status.value
        self.bandwidth_kbps = export.bandwidth_kbps
        for device in export.devices:
            row = self.devices.setdefault(device.key, DeviceRow(device.device_id))
            row.progress, row.status = device.progress, device.status.value


class Board:
    """The state of every watched export, in the order given; renders as a rich table."""

    def __init__(self, export_ids: Iterable[str], title: str = "") -> None:
        self.rows = {i: ExportRow(i) for i in export_ids}
        self.title = title
        self.notes: list[str] = []

    def update(self, event: vdgexport.WatchEvent) -> ExportRow:
        """Apply one event and return the row of its export."""
        row = self.rows.setdefault(event.export_id, ExportRow(event.export_id))
        if isinstance(event, vdgexport.DeviceProgress):
            dev = row.devices.setdefault(
                (event.server_id, event.device_id), DeviceRow(event.device_id)
            )
            dev.progress, dev.status, dev.eta = event.progress, event.status.value, event.eta
            row.bandwidth_kbps = event.bandwidth_kbps
        elif isinstance(event, vdgexport.ExportVanished):
            if event.last_seen is not None and not row.path:
                row.take(event.last_seen)
        elif isinstance(event, vdgexport.ExportStalled):
            row.take(event.export)
            row.status = "stalled"
        else:
            row.take(event.export)
        row.outcome = outcome_of(event) or row.outcome
        return row

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        """The table, its bars as wide as the terminal allows; the last notes below it."""
        states = [r.outcome or r.status for r in self.rows.values()]
        status = max([9, *(len(s) for s in states)])
        room = options.max_width - status - 32  # the other columns and the padding
        bar = max(12, min(30, room - 30))
        name = max(12, min(38, room - bar))
        table = Table(
            box=None,
            padding=(0, 1),
            title=self.title or None,
            title_justify="left",
            show_header=True,
            header_style="bold",
        )
        table.add_column("export", no_wrap=True, overflow="ellipsis", width=name)
        table.add_column("progress", no_wrap=True, width=bar)
        table.add_column("%", justify="right", no_wrap=True, min_width=5)
        table.add_column("bandwidth", justify="right", no_wrap=True, min_width=11)
        table.add_column("ETA", justify="right", no_wrap=True, min_width=4)
        table.add_column("status", no_wrap=True, width=status)
        for row in self.rows.values():
            self._add_export(table, row, bar)
        yield table
        for note in self.notes[-3:]:
            yield Text(note, style="dim")

    @staticmethod
    def _add_export(table: Table, row: ExportRow, bar: int) -> None:
        state = row.outcome or row.status
        style = STYLES.get(state.split(" ")[0], "")
        name = Text.assemble((f"export {row.export_id}", "bold"), " ", (row.path, "dim"))
        table.add_row(
            name,
            progress_bar(row.progress, row.status, row.outcome, bar),
            f"{row.progress:5.1f}",
            fmt_bandwidth(row.bandwidth_kbps),
            fmt_eta(row.eta),
            Text(state, style=style),
        )
        items = list(row.devices.values())
        for n, dev in enumerate(items):
            branch = "└" if n == len(items) - 1 else "├"
            label = Text(f" {branch} device {short_uid(dev.device_id)}")
            eta = fmt_eta(dev.eta) if dev.status == "SYNCING" and not row.outcome else "-"
            table.add_row(
                label,
                progress_bar(dev.progress, dev.status, row.outcome, bar),
                f"{dev.progress:5.1f}",
                "",
                eta,
                Text(dev.status, style=STYLES.get(dev.status, "")),
            )

"""What the command line shows: live bars on a terminal, plain lines or JSON elsewhere.

Imports rich at the top: only `vdgexport._cli` imports this module, after checking that
the ``cli`` extra is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ._cli_json import dumps, event_json
from ._events import (
    DeviceProgress,
    ExportCompleted,
    ExportRecovered,
    ExportRemoved,
    ExportStalled,
    ExportStatusChanged,
    ExportVanished,
    WatchEvent,
)
from ._models import Export, ExportStatus

__all__ = [
    "Board",
    "JsonView",
    "LiveView",
    "PlainView",
    "View",
    "fmt_bandwidth",
    "fmt_eta",
    "make_view",
    "print_table",
]

_STYLES = {
    "SYNCING": "cyan",
    "PENDING": "yellow",
    "COMPLETED": "green",
    "REMOVED": "yellow",
    "UNKNOWN": "magenta",
    "completed": "green",
    "removed": "yellow",
    "vanished": "red",
    "error": "red",
    "stalled": "yellow",
    "waiting": "dim",
}


def fmt_eta(eta: timedelta | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``-`` when unknown."""
    if eta is None:
        return "-"
    minutes, seconds = divmod(round(eta.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def fmt_bandwidth(kbps: float | None) -> str:
    """Kilobits per second as ``512 kbit/s`` or ``8.0 Mbit/s``; ``-`` when not reported."""
    if kbps is None:
        return "-"
    return f"{kbps / 1000:.1f} Mbit/s" if kbps >= 1000 else f"{kbps:.0f} kbit/s"


def outcome_of(event: WatchEvent) -> str | None:
    """``completed``, ``removed`` or ``vanished (...)`` for a terminal event, else ``None``."""
    if isinstance(event, ExportCompleted):
        return "completed"
    if isinstance(event, ExportRemoved):
        return "removed"
    if isinstance(event, ExportVanished):
        return f"vanished ({event.reason.value.replace('_', ' ')})"
    return None


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

    def take(self, export: Export) -> None:
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

    def update(self, event: WatchEvent) -> ExportRow:
        """Apply one event and return the row of its export."""
        row = self.rows.setdefault(event.export_id, ExportRow(event.export_id))
        if isinstance(event, DeviceProgress):
            dev = row.devices.setdefault(
                (event.server_id, event.device_id), DeviceRow(event.device_id)
            )
            dev.progress, dev.status, dev.eta = event.progress, event.status.value, event.eta
            row.bandwidth_kbps = event.bandwidth_kbps
        elif isinstance(event, ExportVanished):
            if event.last_seen is not None and not row.path:
                row.take(event.last_seen)
        elif isinstance(event, ExportStalled):
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
        style = _STYLES.get(state.split(" ")[0], "")
        name = Text.assemble((f"export {row.export_id}", "bold"), " ", (row.path, "dim"))
        table.add_row(
            name,
            _bar(row.progress, row.status, row.outcome, bar),
            f"{row.progress:5.1f}",
            fmt_bandwidth(row.bandwidth_kbps),
            fmt_eta(row.eta),
            Text(state, style=style),
        )
        items = list(row.devices.values())
        for n, dev in enumerate(items):
            branch = "└" if n == len(items) - 1 else "├"
            label = Text(f" {branch} device {_short(dev.device_id)}")
            eta = fmt_eta(dev.eta) if dev.status == "SYNCING" and not row.outcome else "-"
            table.add_row(
                label,
                _bar(dev.progress, dev.status, row.outcome, bar),
                f"{dev.progress:5.1f}",
                "",
                eta,
                Text(dev.status, style=_STYLES.get(dev.status, "")),
            )


def _bar(progress: float, status: str, outcome: str | None, width: int) -> ProgressBar:
    failed = outcome is not None and outcome != "completed"
    style = "red" if failed else "green" if status == "COMPLETED" else "cyan"
    return ProgressBar(
        total=100,
        completed=progress,
        width=width,
        pulse=status == "PENDING",
        complete_style=style,
        finished_style=style,
    )


def _short(uid: str) -> str:
    """The first block of a GUID-like UID, enough to tell devices apart."""
    return uid.strip("{}").split("-")[0] or uid


class View:
    """Shows the events of the watches; subclasses choose how."""

    def __init__(self, console: Console, board: Board) -> None:
        self.console = console
        self.board = board

    def __enter__(self) -> View:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def on_event(self, event: WatchEvent) -> None:
        """Take one event."""
        self.board.update(event)

    def note(self, text: str) -> None:
        """Say something that is not an event (what the demo does next)."""
        self.board.notes.append(text)

    def summary(self) -> None:
        """Print the outcome of every export."""
        rows = [
            (
                f"export {r.export_id}",
                r.path,
                str(len(r.devices)),
                f"{r.progress:.1f}%",
                r.outcome or "unfinished",
            )
            for r in self.board.rows.values()
        ]
        print_table(
            self.console,
            ("export", "path", "devices", "progress", "outcome"),
            rows,
            title="Summary",
            style_column=4,
        )


class LiveView(View):
    """Live bars that redraw in place: for a terminal only."""

    def __init__(self, console: Console, board: Board) -> None:
        super().__init__(console, board)
        self._live = Live(
            board,
            console=console,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> View:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()


class PlainView(View):
    """Plain lines, no colours or cursor movement: status changes, every 10 % step of a
    device, stalls, and each outcome."""

    def on_event(self, event: WatchEvent) -> None:
        """Print a line for this event if it says something new."""
        row = self.board.update(event)
        name = f"export {event.export_id}"
        if isinstance(event, DeviceProgress):
            dev = row.devices[(event.server_id, event.device_id)]
            step = int(event.progress // 10)
            if (
                step != dev.step
                or event.previous_progress is None
                or (event.status is not ExportStatus.SYNCING)
            ):
                dev.step = step
                eta = f", ETA {fmt_eta(event.eta)}" if event.status is ExportStatus.SYNCING else ""
                self.line(
                    f"{name} device {_short(dev.device_id)}: {event.progress:.1f}% "
                    f"{event.status.value}{eta}"
                )
        elif isinstance(event, ExportStatusChanged):
            extra = ""
            if event.previous_status is None:
                count = len(row.devices)
                extra = (
                    f" ({row.path}, {count} device{'s' if count != 1 else ''}, "
                    f"{fmt_bandwidth(row.bandwidth_kbps)})"
                )
            self.line(f"{name}: {event.status.value}{extra}")
        elif isinstance(event, ExportStalled):
            self.line(f"{name}: stalled for {fmt_eta(event.stalled_for)}")
        elif isinstance(event, ExportRecovered):
            self.line(f"{name}: moving again")
        else:
            self.line(f"{name}: {row.outcome}")

    def note(self, text: str) -> None:
        """Print the note as a line."""
        super().note(text)
        self.line(text)

    def line(self, text: str) -> None:
        """Write one line and flush it, so a pipe sees it at once."""
        out = self.console.file
        out.write(text + "\n")
        out.flush()


class JsonView(PlainView):
    """JSON Lines: one object per event, with ``"type"`` and every field; no notes."""

    def on_event(self, event: WatchEvent) -> None:
        """Print the event as one JSON line."""
        self.board.update(event)
        self.line(dumps(event_json(event)))

    def note(self, text: str) -> None:
        """Notes are not events: keep them out of the JSON stream."""
        self.board.notes.append(text)

    def summary(self) -> None:
        """The terminal events already are the summary."""


def make_view(console: Console, board: Board, *, json: bool) -> View:
    """The right view for this output: JSON, live bars on a terminal, else plain lines."""
    if json:
        return JsonView(console, board)
    if console.is_terminal:
        return LiveView(console, board)
    return PlainView(console, board)


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    style_column: int | None = None,
) -> None:
    """A rich table on a terminal; aligned plain text columns elsewhere."""
    if not console.is_terminal:
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        lines = [f"{title}:"] if title else []
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [headers, *rows]
        ]
        out = console.file
        out.write("\n".join(lines) + "\n")
        out.flush()
        return
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD)
    for header in headers:
        table.add_column(header, overflow="fold")
    for cells in rows:
        styled = [
            Text(c, style=_STYLES.get(c.split(" ")[0], "") if i == style_column else "")
            for i, c in enumerate(cells)
        ]
        table.add_row(*styled)
    console.print(table)

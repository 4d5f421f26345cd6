"""Shows the events of the watches: live bars on a terminal, plain lines or JSON elsewhere."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live

import vdgexport

from ..jsonout import dumps, event_json
from .board import Board
from .format import fmt_bandwidth, fmt_eta, short_uid
from .table import print_table

__all__ = ["JsonView", "LiveView", "PlainView", "View", "make_view"]


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

    def on_event(self, event: vdgexport.WatchEvent) -> None:
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

    def on_event(self, event: vdgexport.WatchEvent) -> None:
        """Print a line for this event if it says something new."""
        row = self.board.update(event)
        name = f"export {event.export_id}"
        if isinstance(event, vdgexport.DeviceProgress):
            dev = row.devices[(event.server_id, event.device_id)]
            step = int(event.progress // 10)
            if (
                step != dev.step
                or event.previous_progress is None
                or (event.status is not vdgexport.ExportStatus.SYNCING)
            ):
                dev.step = step
                eta = (
                    f", ETA {fmt_eta(event.eta)}"
                    if event.status is vdgexport.ExportStatus.SYNCING
                    else ""
                )
                self.line(
                    f"{name} device {short_uid(dev.device_id)}: {event.progress:.1f}% "
                    f"{event.status.value}{eta}"
                )
        elif isinstance(event, vdgexport.ExportStatusChanged):
            extra = ""
            if event.previous_status is None:
                count = len(row.devices)
                extra = (
                    f" ({row.path}, {count} device{'s' if count != 1 else ''}, "
                    f"{fmt_bandwidth(row.bandwidth_kbps)})"
                )
            self.line(f"{name}: {event.status.value}{extra}")
        elif isinstance(event, vdgexport.ExportStalled):
            self.line(f"{name}: stalled for {fmt_eta(event.stalled_for)}")
        elif isinstance(event, vdgexport.ExportRecovered):
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

    def on_event(self, event: vdgexport.WatchEvent) -> None:
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

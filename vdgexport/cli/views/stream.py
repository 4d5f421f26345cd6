"""Shows the events of the watches: live bars on a terminal, plain lines or JSON elsewhere."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.live import Live

import vdgexport

from ..common import dumps
from .board import Board, ExportRow
from .format import fmt_bandwidth, fmt_duration, fmt_eta, short_uid, state_of, vanish_note
from .live import LiveBoard
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
        """Print the outcome of every export, one row each (the path cut to fit)."""
        rows = [
            (
                r.export_id,
                r.path or "-",
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
            squeeze_column=1,
        )


class LiveView(View):
    """Live bars that redraw in place, fitted to the terminal: for a terminal only.

    What goes to stderr meanwhile (``--verbose``) is printed above the bars.
    """

    def __init__(self, console: Console, board: Board) -> None:
        super().__init__(console, board)
        self._live = Live(
            LiveBoard(board),
            console=console,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=True,
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
    device, stalls, the server unreachable and back, and each outcome once."""

    def on_event(self, event: vdgexport.WatchEvent) -> None:
        """Print a line for this event if it says something new."""
        row = self.board.update(event)
        text = self._describe(event, row)
        if text is not None:
            self.line(f"export {event.export_id}{text}")

    def _describe(self, event: vdgexport.WatchEvent, row: ExportRow) -> str | None:
        if isinstance(event, vdgexport.DeviceProgress):
            return self._progress(event, row)
        if isinstance(event, vdgexport.ExportStatusChanged):
            if event.status in (vdgexport.ExportStatus.COMPLETED, vdgexport.ExportStatus.REMOVED):
                return None  # the outcome follows at once and says it
            if event.previous_status is not None:
                return f": {row.status}"
            count = len(event.export.devices)
            return (
                f": {row.status} ({row.path}, {count} device{'s' if count != 1 else ''}, "
                f"{fmt_bandwidth(row.bandwidth_kbps)})"
            )
        if isinstance(event, vdgexport.ExportStalled):
            return f": stalled for {fmt_eta(event.stalled_for)}"
        if isinstance(event, vdgexport.ExportRecovered):
            return ": moving again"
        if isinstance(event, vdgexport.ExportVanished):
            return f": {row.outcome}: {vanish_note(event)}"
        if isinstance(event, vdgexport.ConnectionLost):
            return f": server unreachable for {fmt_duration(event.failing_for)} ({event.error})"
        if isinstance(event, vdgexport.ConnectionRestored):
            return f": server reachable again after {fmt_duration(event.down_for)}"
        return f": {row.outcome}"

    @staticmethod
    def _progress(event: vdgexport.DeviceProgress, row: ExportRow) -> str | None:
        dev = row.devices[(event.server_id, event.device_id)]
        step = int(event.progress // 10)
        syncing = event.status is vdgexport.ExportStatus.SYNCING
        if step == dev.step and event.previous_progress is not None and syncing:
            return None
        dev.step = step
        eta = f", ETA {fmt_eta(event.eta)}" if syncing else ""
        return (
            f" device {short_uid(dev.device_id)}: {event.progress:.1f}% "
            f"{state_of(event.status)}{eta}"
        )

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
    """JSON Lines: one object per event (`vdgexport.event_to_dict`); no notes."""

    def on_event(self, event: vdgexport.WatchEvent) -> None:
        """Print the event as one JSON line."""
        self.board.update(event)
        self.line(dumps(vdgexport.event_to_dict(event)))

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

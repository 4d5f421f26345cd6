"""The live table of a `Board`, fitted to the terminal: it never scrolls and never wraps.

What matters comes first: exports that just ended, then those moving, then those waiting,
then those that ended earlier. Every export keeps its row while there is room for it; the
devices of exports in progress fill the rows left, those of ended exports are folded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

from .board import Board, DeviceRow, ExportRow
from .format import fmt_bandwidth, fmt_duration, fmt_eta, middle, progress_bar, short_uid, style_of

__all__ = ["LiveBoard"]

_PCT, _BANDWIDTH = 5, 11  # "100.0", "16.0 Mbit/s"


@dataclass
class _Plan:
    """The rows one frame shows: each export with the devices that have room."""

    exports: list[tuple[ExportRow, list[DeviceRow], int]]  # devices shown, devices folded
    hidden: list[ExportRow]


_ORDER = ("syncing", "stalled", "pending", "waiting", "completed", "removed", "vanished")


def _tally(rows: list[ExportRow]) -> str:
    counts = Counter(r.state.split(" ")[0] for r in rows)
    order = sorted(counts, key=lambda s: _ORDER.index(s) if s in _ORDER else len(_ORDER))
    return ", ".join(f"{counts[state]} {state}" for state in order)


def plan(rows: list[ExportRow], lines: int) -> _Plan:
    """Which rows fit in ``lines``: one per export first, then devices in the rows left."""
    shown = rows if len(rows) <= lines else rows[: max(0, lines - 1)]
    hidden = rows[len(shown) :]
    room = max(0, lines - len(shown) - (1 if hidden else 0))
    exports: list[tuple[ExportRow, list[DeviceRow], int]] = []
    for row in shown:
        devices = list(row.devices.values())
        if row.outcome is not None or not devices or room == 0:
            exports.append((row, [], 0))
            continue
        if len(devices) <= room:
            exports.append((row, devices, 0))
            room -= len(devices)
            continue
        moving = [d for d in devices if d.status != "completed"]
        first = (moving + [d for d in devices if d.status == "completed"])[: room - 1]
        exports.append((row, [d for d in devices if d in first], len(devices) - len(first)))
        room = 0
    return _Plan(exports, hidden)


class LiveBoard:
    """A `Board` rendered to fit the console's width and height."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        """Title, the unreachable banner, the table, the last notes."""
        board = self.board
        width, height = options.max_width, options.size.height
        rows = board.ordered()
        title = f"{board.title} · {_tally(rows)}" if board.title else _tally(rows)
        yield Text(title, style="bold", no_wrap=True, overflow="ellipsis")
        outage = board.unreachable_for()
        if outage is not None:
            down_for, error = outage
            yield Text(
                f"server unreachable for {fmt_duration(down_for)}: {error}",
                style="bold white on red",
                no_wrap=True,
                overflow="ellipsis",
            )
        notes = board.notes[-2:]
        lines = height - 2 - (outage is not None) - len(notes) - 1  # title, header, last line
        shown = plan(rows, max(1, lines))
        yield self._table(shown, width)
        if shown.hidden:
            more = f"… {len(shown.hidden)} more: {_tally(shown.hidden)}"
            yield Text(more, style="dim", no_wrap=True, overflow="ellipsis")
        for note in notes:
            yield Text(note, style="dim", no_wrap=True, overflow="ellipsis")

    def _table(self, shown: _Plan, width: int) -> Table:
        states = [r.state for r, _, _ in shown.exports]
        states += [r.device_state(d) for r, devices, _ in shown.exports for d in devices]
        state = max([6, *(len(s) for s in states)])
        etas = [fmt_eta(r.eta) for r, _, _ in shown.exports]
        eta = max([3, *(len(e) for e in etas)])
        room = width - state - eta - _PCT - _BANDWIDTH - 6  # one space after each column
        names = [len(r.export_id) + 1 + len(r.path) for r, _, _ in shown.exports]
        longest = max([12, *names])
        bar = max(8, min(30, room - min(40, longest)))
        name = max(8, min(room - bar, longest))
        table = Table(box=None, padding=(0, 1, 0, 0), show_header=True, header_style="bold")
        table.add_column("export", no_wrap=True, overflow="ellipsis", width=name)
        table.add_column("progress", no_wrap=True, width=bar)
        table.add_column("%", justify="right", no_wrap=True, width=_PCT)
        table.add_column("bandwidth", justify="right", no_wrap=True, width=_BANDWIDTH)
        table.add_column("ETA", justify="right", no_wrap=True, width=eta)
        table.add_column("status", no_wrap=True, width=state)
        for row, devices, folded in shown.exports:
            stale = row.export_id in self.board.outages  # nothing fresh while unreachable
            self._export_rows(table, row, devices, folded, name, bar, stale)
        return table

    @staticmethod
    def _export_rows(
        table: Table,
        row: ExportRow,
        devices: list[DeviceRow],
        folded: int,
        name: int,
        bar: int,
        stale: bool,
    ) -> None:
        ended = row.outcome is not None
        blank = ended or stale  # no bandwidth or ETA: it ended, or nothing is known now
        failed = ended and row.outcome != "completed"
        label = Text.assemble(
            (row.export_id, "bold"), " ", (middle(row.path, name - len(row.export_id) - 1), "dim")
        )
        table.add_row(
            label,
            progress_bar(row.progress, row.status, failed, bar),
            f"{row.progress:5.1f}",
            "" if blank else fmt_bandwidth(row.bandwidth_kbps),
            "" if blank else fmt_eta(row.eta),
            Text(row.state, style=style_of(row.state)),
        )
        for n, dev in enumerate(devices):
            last = n == len(devices) - 1 and not folded
            state = row.device_state(dev)
            table.add_row(
                Text(f" {'└' if last else '├'} {short_uid(dev.device_id)}"),
                progress_bar(dev.progress, dev.status, failed, bar),
                f"{dev.progress:5.1f}",
                "",
                fmt_eta(dev.eta) if state == "syncing" and not stale else "",
                Text(state, style=style_of(state)),
            )
        if folded:
            what = "more devices" if devices else "devices"
            table.add_row(Text(f" └ {folded} {what}", style="dim"))

"""What the command line shows, rendered at real terminal sizes (80x24 and 120x40)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from rich.console import Console

from vdgexport import (
    ConnectionLost,
    ConnectionRestored,
    DeviceExport,
    DeviceProgress,
    Export,
    ExportCompleted,
    ExportRemoved,
    ExportStalled,
    ExportStatus,
    ExportStatusChanged,
    ExportVanished,
    VanishReason,
)
from vdgexport.cli.views import (
    Board,
    LiveBoard,
    LiveView,
    PlainView,
    fmt_bandwidth,
    fmt_eta,
    make_view,
    middle,
    print_devices,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
START = datetime(2024, 1, 19, 10, 0, tzinfo=timezone.utc)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The demo's exports: path and number of devices.
DEMO = [
    ("D:\\Exports\\lobby", 1),
    ("D:\\Exports\\parking", 3),
    ("D:\\Exports\\loading-dock", 2),
    ("D:\\Exports\\gate", 4),
    ("D:\\Exports\\warehouse", 6),
    ("D:\\Exports\\archive", 2),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guid(export: int, device: int) -> str:
    return f"{{{export:04X}{device:04X}-0000-4000-8000-{export:06X}{device:06X}}}"


def export(
    number: int, status: ExportStatus = ExportStatus.SYNCING, progress: float = 40.0
) -> Export:
    path, count = DEMO[number - 1]
    devices = tuple(
        DeviceExport(
            guid(0x5E, number),
            guid(number, d),
            START,
            START + timedelta(minutes=5),
            progress,
            status,
        )
        for d in range(1, count + 1)
    )
    return Export(str(number), path, status, 8000.0, devices)


def start(board: Board, number: int, progress: float = 40.0) -> None:
    """What the first poll of a watch gives: the status, then each device."""
    seen = export(number, progress=progress)
    board.update(ExportStatusChanged(seen.export_id, NOW, ExportStatus.SYNCING, None, seen))
    for d in seen.devices:
        board.update(
            DeviceProgress(
                seen.export_id, NOW, d.server_id, d.device_id, progress, None,
                ExportStatus.SYNCING, 8000.0, 1.0, timedelta(seconds=60),
            )
        )  # fmt: skip


def render(board: Board, width: int, height: int) -> list[str]:
    console = Console(
        file=StringIO(), force_terminal=True, width=width, height=height, color_system=None
    )
    console.print(LiveBoard(board))
    text = ANSI.sub("", console.file.getvalue())  # type: ignore[attr-defined]
    return text.splitlines()


def demo_board(clock: Clock) -> Board:
    """Mid-demo: five exports moving, the archive just vanished, the gate removed earlier."""
    board = Board([str(n) for n in range(1, 7)], title="vdgexport demo (10x)", clock=clock)
    for number in range(1, 7):
        start(board, number)
    board.update(ExportRemoved("4", NOW, export(4, ExportStatus.REMOVED)))
    clock.now += 10
    board.update(ExportVanished("6", NOW, VanishReason.NOT_FOUND, export(6)))
    board.notes += ["demo: removing export 4", "demo: restarting the PluginManager"]
    return board


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 40)])
def test_the_live_view_fits_the_terminal_with_every_export_visible(width: int, height: int) -> None:
    lines = render(demo_board(Clock()), width, height)
    assert len(lines) < height  # never scrolls: the frame leaves the last line free
    assert max(len(line) for line in lines) <= width  # and never wraps
    exports = [line for line in lines if re.match(r"\d ", line)]
    assert [line.split()[0] for line in exports] == ["6", "1", "2", "3", "5", "4"]
    assert "vanished (not found)" in exports[0]  # just ended: first, and whole
    assert exports[-1].split()[-1] == "removed"  # ended earlier: last
    assert lines[-1] == "demo: restarting the PluginManager"


def test_devices_of_ended_exports_fold_and_moving_ones_fill_the_rows_left() -> None:
    lines = render(demo_board(Clock()), 80, 16)
    assert len(lines) == 15
    devices = [line.split()[1] for line in lines if line.startswith((" ├", " └"))]
    # 6 just vanished and 4 was removed: folded. 1 and 2 moving: every device. 3: no room
    # for both of its devices, so one line says how many; 5 gets no device row at all.
    assert devices == ["00010001", "00020001", "00020002", "00020003", "2"]
    assert " └ 2 devices" in [line.rstrip() for line in lines]
    assert [line.split()[0] for line in lines if re.match(r"\d ", line)] == list("612354")


def test_at_120x40_every_device_of_a_moving_export_is_shown() -> None:
    lines = render(demo_board(Clock()), 120, 40)
    shown = {line.split()[1] for line in lines if line.startswith((" ├", " └"))}
    assert shown == {f"{n:04X}{d:04X}" for n in (1, 2, 3, 5) for d in range(1, DEMO[n - 1][1] + 1)}


def test_an_ended_export_shows_no_bandwidth_or_eta_and_its_devices_the_outcome() -> None:
    clock = Clock()
    board = Board(["4"], clock=clock)
    start(board, 4)
    board.update(ExportRemoved("4", NOW, export(4, ExportStatus.REMOVED)))
    row = board.rows["4"]
    assert row.bandwidth_kbps is None
    assert row.eta is None
    assert {row.device_state(d) for d in row.devices.values()} == {"removed"}
    (line,) = [line for line in render(board, 80, 24) if line.startswith("4 ")]
    assert "Mbit/s" not in line
    assert ":" not in line.split("\\")[-1]  # no ETA
    assert line.rstrip().endswith("removed")


def test_a_long_path_is_cut_in_the_middle() -> None:
    board = Board(["1"], clock=Clock())
    long = "D:\\Exports\\" + "x" * 80 + "\\incident-17"
    board.update(
        ExportStatusChanged(
            "1", NOW, ExportStatus.PENDING, None, Export("1", long, ExportStatus.PENDING, None, ())
        )
    )
    (line,) = [line for line in render(board, 80, 24) if line.startswith("1 D:")]
    name = line[: line.index("━")].rstrip()
    assert name.startswith("1 D:\\Exports\\xxx")
    assert name.endswith("xxx\\incident-17")  # both ends of the path survive
    assert "…" in name
    assert middle("abcdefghij", 5) == "ab…ij"
    assert middle("abc", 5) == "abc"


def test_the_live_view_says_how_long_the_server_has_been_unreachable() -> None:
    clock = Clock()
    board = Board(["1"], clock=clock)
    start(board, 1)
    error = "TransportError: ConnectError for http://vdg/command"
    board.update(ConnectionLost("1", NOW, error, timedelta(seconds=12)))
    clock.now += 30
    lines = render(board, 80, 24)
    assert lines[1].startswith(f"server unreachable for 42 s: {error}")
    (row,) = [line for line in lines if line.startswith("1 D:")]
    assert "Mbit/s" not in row  # nothing known now: no bandwidth, no ETA
    assert "1:00" not in row
    board.update(ConnectionRestored("1", NOW, timedelta(seconds=42)))
    lines = render(board, 80, 24)
    assert not any("unreachable" in line for line in lines)
    assert "1:00" in next(line for line in lines if line.startswith("1 D:"))


def test_plain_lines_say_when_the_server_is_unreachable_and_back() -> None:
    console = Console(file=StringIO(), force_terminal=False)
    view = make_view(console, Board(["1"]), json=False)
    view.on_event(ConnectionLost("1", NOW, "TransportError: refused", timedelta(seconds=10.4)))
    view.on_event(ConnectionRestored("1", NOW, timedelta(seconds=75)))
    assert console.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "export 1: server unreachable for 10 s (TransportError: refused)",
        "export 1: server reachable again after 1:15",
    ]


def test_status_of_one_export_keeps_each_guid_whole_at_80_columns() -> None:
    console = Console(file=StringIO(), force_terminal=True, width=80, color_system=None)
    shown = export(5)
    print_devices(console, shown)
    lines = ANSI.sub("", console.file.getvalue()).splitlines()  # type: ignore[attr-defined]
    assert max(len(line) for line in lines) <= 80
    for device in shown.devices:
        assert sum(device.device_id in line for line in lines) == 1
    assert sum(shown.devices[0].server_id in line for line in lines) == 1
    assert lines.count("    2024-01-19 10:00:00 → 2024-01-19 10:05:00 UTC") == 6


def test_status_of_one_export_on_a_wide_terminal_is_one_table() -> None:
    console = Console(file=StringIO(), force_terminal=True, width=160, color_system=None)
    print_devices(console, export(2))
    lines = ANSI.sub("", console.file.getvalue()).splitlines()  # type: ignore[attr-defined]
    assert lines[1].split() == [
        "server",
        "device",
        "start",
        "(UTC)",
        "end",
        "(UTC)",
        "progress",
        "status",
    ]
    assert len(lines) == 3 + 3


def test_formats() -> None:
    assert fmt_eta(None) == "-"
    assert fmt_eta(timedelta(seconds=75)) == "1:15"
    assert fmt_eta(timedelta(hours=2, seconds=5)) == "2:00:05"
    assert fmt_bandwidth(None) == "-"
    assert fmt_bandwidth(512) == "512 kbit/s"
    assert fmt_bandwidth(16000) == "16.0 Mbit/s"


def test_plain_lines_say_each_ending_once_in_one_case() -> None:
    console = Console(file=StringIO(), force_terminal=False)
    view = make_view(console, Board(["1"]), json=False)
    assert type(view) is PlainView
    done = export(1, ExportStatus.COMPLETED, 100.0)
    view.on_event(ExportStatusChanged("1", NOW, ExportStatus.SYNCING, None, export(1)))
    view.on_event(ExportStatusChanged("1", NOW, ExportStatus.COMPLETED, ExportStatus.SYNCING, done))
    view.on_event(ExportCompleted("1", NOW, done))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert out.splitlines() == [
        "export 1: syncing (D:\\Exports\\lobby, 1 device, 8.0 Mbit/s)",
        "export 1: completed",
    ]


def test_view_follows_the_output() -> None:
    board = Board(["7"])
    plain = Console(file=StringIO(), force_terminal=False)
    tty = Console(file=StringIO(), force_terminal=True, width=100)
    assert type(make_view(tty, board, json=False)) is LiveView
    view = make_view(plain, board, json=False)
    stalled = Export("7", "D:\\x", ExportStatus.SYNCING, 512.0, ())
    view.on_event(ExportStalled("7", NOW, timedelta(seconds=90), stalled))
    assert plain.file.getvalue() == "export 7: stalled for 1:30\n"  # type: ignore[attr-defined]
    tty.print(LiveBoard(board))
    assert "stalled" in tty.file.getvalue()  # type: ignore[attr-defined]


def test_export_status_prints_as_the_server_writes_it() -> None:
    assert str(ExportStatus.COMPLETED) == "COMPLETED"
    assert f"{ExportStatus.SYNCING}" == "SYNCING"


def test_exports_that_do_not_fit_are_counted_on_one_line() -> None:
    clock = Clock()
    board = Board([str(n) for n in range(1, 41)], title="Watching 40 export(s)", clock=clock)
    for number in range(1, 41):
        board.update(
            ExportStatusChanged(
                str(number), NOW, ExportStatus.SYNCING, None,
                Export(str(number), f"D:\\Exports\\export_{number}", ExportStatus.SYNCING, 8.0, ()),
            )
        )  # fmt: skip
    lines = render(board, 80, 24)
    assert len(lines) == 23
    assert lines[0] == "Watching 40 export(s) · 40 syncing"
    assert [line.split()[0] for line in lines[2:-1]] == [str(n) for n in range(1, 21)]
    assert lines[-1] == "… 20 more: 20 syncing"

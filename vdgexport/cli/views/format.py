"""How values are written: durations, bandwidths, outcomes, short UIDs, styles, bars."""

from __future__ import annotations

from datetime import timedelta

from rich.progress_bar import ProgressBar

import vdgexport

__all__ = ["STYLES", "fmt_bandwidth", "fmt_eta", "outcome_of", "progress_bar", "short_uid"]

STYLES = {
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


def outcome_of(event: vdgexport.WatchEvent) -> str | None:
    """``completed``, ``removed`` or ``vanished (...)`` for a terminal event, else ``None``."""
    if isinstance(event, vdgexport.ExportCompleted):
        return "completed"
    if isinstance(event, vdgexport.ExportRemoved):
        return "removed"
    if isinstance(event, vdgexport.ExportVanished):
        return f"vanished ({event.reason.value.replace('_', ' ')})"
    return None


def progress_bar(progress: float, status: str, outcome: str | None, width: int) -> ProgressBar:
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


def short_uid(uid: str) -> str:
    """The first block of a GUID-like UID, enough to tell devices apart."""
    return uid.strip("{}").split("-")[0] or uid

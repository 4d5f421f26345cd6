"""How values are written: statuses, outcomes, durations, bandwidths, paths, UIDs, bars.

One wording and one case for what the command line shows a person: statuses and outcomes
in lower case (``syncing``, ``completed``, ``removed``, ``vanished (not found)``).
"""

from __future__ import annotations

from datetime import timedelta

from rich.progress_bar import ProgressBar

import vdgexport

__all__ = [
    "STYLES",
    "fmt_bandwidth",
    "fmt_duration",
    "fmt_eta",
    "middle",
    "outcome_of",
    "progress_bar",
    "short_uid",
    "state_of",
    "style_of",
    "vanish_note",
]

STYLES = {
    "syncing": "cyan",
    "pending": "yellow",
    "completed": "green",
    "removed": "yellow",
    "unknown": "magenta",
    "vanished": "red",
    "stalled": "yellow",
    "waiting": "dim",
    "unreachable": "red",
}
RESTART_HINT = "export ids are reset when the PluginManager restarts"


def state_of(status: vdgexport.ExportStatus) -> str:
    """A status as the command line writes it: ``syncing``, ``completed``, ..."""
    return status.value.lower()


def style_of(state: str) -> str:
    """The colour of a state or outcome (its first word)."""
    return STYLES.get(state.split(" ")[0], "")


def outcome_of(event: vdgexport.WatchEvent) -> str | None:
    """``completed``, ``removed`` or ``vanished (...)`` for a terminal event, else ``None``."""
    if isinstance(event, vdgexport.ExportCompleted):
        return "completed"
    if isinstance(event, vdgexport.ExportRemoved):
        return "removed"
    if isinstance(event, vdgexport.ExportVanished):
        return f"vanished ({event.reason.value.replace('_', ' ')})"
    return None


def vanish_note(event: vdgexport.ExportVanished) -> str:
    """What a vanish means, in plain words, naming the id."""
    if event.reason is vdgexport.VanishReason.REPLACED:
        return f"id {event.export_id} now names another export ({RESTART_HINT})"
    if event.last_seen is None:
        return f"no export has id {event.export_id} ({RESTART_HINT})"
    return f"the server no longer knows id {event.export_id} ({RESTART_HINT})"


def fmt_eta(eta: timedelta | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``-`` when unknown."""
    if eta is None:
        return "-"
    minutes, seconds = divmod(round(eta.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def fmt_duration(duration: timedelta) -> str:
    """How long something has lasted: ``0.4 s``, ``12 s``, then ``m:ss`` or ``h:mm:ss``."""
    seconds = duration.total_seconds()
    if seconds < 10:
        return f"{max(0.0, seconds):.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return fmt_eta(duration)


def fmt_bandwidth(kbps: float | None) -> str:
    """Kilobits per second as ``512 kbit/s`` or ``8.0 Mbit/s``; ``-`` when not reported."""
    if kbps is None:
        return "-"
    return f"{kbps / 1000:.1f} Mbit/s" if kbps >= 1000 else f"{kbps:.0f} kbit/s"


def middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle, where a path matters least.

    Example:
        >>> middle("D:\\\\Exports\\\\loading-dock", 15)
        'D:\\\\Expo…ng-dock'
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    tail = (width - 1) // 2
    head = width - 1 - tail
    return f"{text[:head]}…{text[len(text) - tail :]}"


def short_uid(uid: str) -> str:
    """The first block of a GUID-like UID, enough to tell devices apart."""
    return uid.strip("{}").split("-")[0] or uid


def progress_bar(progress: float, status: str, failed: bool, width: int) -> ProgressBar:
    """A bar of ``width`` cells: red once failed, green when complete, pulsing while pending."""
    style = "red" if failed else "green" if status == "completed" else "cyan"
    return ProgressBar(
        total=100,
        completed=progress,
        width=width,
        pulse=status == "pending",
        complete_style=style,
        finished_style=style,
    )

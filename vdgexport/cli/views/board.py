"""The state of every watched export, as the events of their watches tell it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import vdgexport

from .format import outcome_of, state_of

__all__ = ["JUST_ENDED", "Board", "DeviceRow", "ExportRow", "Outage"]

#: For how many seconds an export that ended stays at the top of the live view.
JUST_ENDED = 5.0
#: Events that carry the whole export.
_WITH_EXPORT = (
    vdgexport.ExportStatusChanged,
    vdgexport.ExportRecovered,
    vdgexport.ExportCompleted,
    vdgexport.ExportRemoved,
)


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
    """What is known of one watched export; ``ended_at`` is on the board's clock."""

    export_id: str
    path: str = ""
    status: str = "waiting"
    bandwidth_kbps: float | None = None
    devices: dict[tuple[str, str], DeviceRow] = field(default_factory=dict)
    outcome: str | None = None
    ended_at: float | None = None
    stalled: bool = False

    @property
    def progress(self) -> float:
        """Mean progress of the devices seen so far."""
        rows = self.devices.values()
        return sum(d.progress for d in rows) / len(rows) if rows else 0.0

    @property
    def state(self) -> str:
        """The outcome once ended, else ``stalled`` or the status."""
        return self.outcome or ("stalled" if self.stalled else self.status)

    @property
    def eta(self) -> timedelta | None:
        """The longest device ETA, ``None`` once ended or while a moving device has none."""
        moving = [d for d in self.devices.values() if d.status != "completed"]
        if self.outcome or not moving or any(d.eta is None for d in moving):
            return None
        return max(d.eta for d in moving if d.eta is not None)

    def device_state(self, device: DeviceRow) -> str:
        """A device's status, or the export's outcome if the export ended before it did."""
        if self.outcome and device.status != "completed":
            return self.outcome.split(" ")[0]
        return device.status

    def take(self, export: vdgexport.Export) -> None:
        """Adopt what a whole `Export` says (path, status, bandwidth, device list)."""
        self.path, self.status = export.path, state_of(export.status)
        self.bandwidth_kbps = export.bandwidth_kbps
        for device in export.devices:
            row = self.devices.setdefault(device.key, DeviceRow(device.device_id))
            row.progress, row.status = device.progress, state_of(device.status)


@dataclass
class Outage:
    """The server unreachable for one export: since ``since`` on the board's clock."""

    error: str
    since: float


class Board:
    """The state of every watched export, in the order given, and of the connection.

    ``clock`` (seconds, monotonic) times how long ago an export ended and how long the
    server has been unreachable.
    """

    def __init__(
        self,
        export_ids: Iterable[str],
        title: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rows = {i: ExportRow(i) for i in export_ids}
        self.title = title
        self.clock = clock
        self.notes: list[str] = []
        self.outages: dict[str, Outage] = {}

    def update(self, event: vdgexport.WatchEvent) -> ExportRow:
        """Apply one event and return the row of its export."""
        row = self.rows.setdefault(event.export_id, ExportRow(event.export_id))
        if isinstance(event, vdgexport.DeviceProgress):
            dev = row.devices.setdefault(
                (event.server_id, event.device_id), DeviceRow(event.device_id)
            )
            dev.progress, dev.status, dev.eta = event.progress, state_of(event.status), event.eta
            row.bandwidth_kbps = event.bandwidth_kbps
        elif isinstance(event, vdgexport.ExportVanished):
            if event.last_seen is not None and not row.path:
                row.take(event.last_seen)
        elif isinstance(event, vdgexport.ExportStalled):
            row.take(event.export)
            row.stalled = True
        elif isinstance(event, _WITH_EXPORT):
            row.take(event.export)
            row.stalled = False
        elif isinstance(event, vdgexport.ConnectionLost):
            self.lost(event.export_id, event.error, event.failing_for)
        elif isinstance(event, vdgexport.ConnectionRestored):
            self.restored(event.export_id)
        outcome = outcome_of(event)
        if outcome is not None:
            row.outcome, row.ended_at = outcome, self.clock()
            row.bandwidth_kbps = None
            self.outages.pop(event.export_id, None)
        return row

    def lost(self, export_id: str, error: str, failing_for: timedelta) -> None:
        """The server has been unreachable for ``export_id`` for ``failing_for``."""
        since = self.clock() - failing_for.total_seconds()
        self.outages[export_id] = Outage(error, since)

    def restored(self, export_id: str) -> None:
        """The server answers again for ``export_id``."""
        self.outages.pop(export_id, None)

    def unreachable_for(self) -> tuple[timedelta, str] | None:
        """How long the server has been unreachable (the longest outage) and its last error."""
        if not self.outages:
            return None
        first = min(self.outages.values(), key=lambda o: o.since)
        return timedelta(seconds=max(0.0, self.clock() - first.since)), first.error

    def ordered(self) -> list[ExportRow]:
        """Rows by what matters now: just ended, moving, waiting, then ended earlier.

        Within each group the order given is kept; once every export has ended, the order
        given is the order shown.
        """
        now = self.clock()
        if all(row.ended_at is not None for row in self.rows.values()):
            return list(self.rows.values())

        def rank(row: ExportRow) -> int:
            if row.ended_at is not None:
                return 0 if now - row.ended_at < JUST_ENDED else 3
            return 1 if row.status == "syncing" else 2

        return sorted(self.rows.values(), key=rank)

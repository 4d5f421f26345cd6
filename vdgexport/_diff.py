"""What changed between two observations of one export, as events in the documented order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ._events import (
    DeviceProgress,
    ExportCompleted,
    ExportRecovered,
    ExportRemoved,
    ExportStalled,
    ExportStatusChanged,
    ExportVanished,
    VanishReason,
    WatchEvent,
)
from ._models import Export, ExportStatus

__all__ = ["Baseline", "Tracker"]

DeviceKey = tuple[str, str]
#: Weight of the newest speed in the smoothed rate (exponential moving average).
SMOOTHING = 0.3


@dataclass(slots=True)
class Baseline:
    """What a watcher has been told of an export: the state a diff starts from."""

    status: ExportStatus | None
    fingerprint: Any
    devices: dict[DeviceKey, tuple[float, ExportStatus]]
    export: Export | None

    @classmethod
    def of(cls, export: Export) -> Baseline:
        devices = {d.key: (d.progress, d.status) for d in export.devices}
        return cls(export.status, export.fingerprint, devices, export)

    def to_json(self) -> dict[str, Any]:
        path, spans = self.fingerprint
        return {
            "status": None if self.status is None else self.status.value,
            "path": path,
            "spans": sorted(list(s) for s in spans),
            "devices": [[k[0], k[1], p, s.value] for k, (p, s) in self.devices.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        status = data["status"]
        spans = frozenset(tuple(str(v) for v in s) for s in data["spans"])
        devices = {(str(a), str(b)): (float(p), ExportStatus(s)) for a, b, p, s in data["devices"]}
        return cls(
            None if status is None else ExportStatus(status),
            (str(data["path"]), spans),
            devices,
            None,
        )


@dataclass(slots=True)
class _Rate:
    progress: float
    at: float
    rate: float | None = None


@dataclass(slots=True)
class Tracker:
    """The shared state of one watched id: its last export, speeds and stall clock.

    Kept small, since a client may watch thousands of ids: the last export is the parser's
    own object, and a device's speed is tracked only once it has moved.
    """

    export_id: str
    stall_after: float | None
    since: float
    last: Export | None = None
    rates: dict[DeviceKey, _Rate] | None = None
    last_move: float = 0.0
    stalled: bool = False

    def observe(self, new: Export, now: float) -> dict[DeviceKey, tuple[float | None, Any]]:
        """Update speeds from ``new`` and return ``{device: (rate, eta)}``."""
        estimates: dict[DeviceKey, tuple[float | None, Any]] = {}
        old = {} if self.last is None else {d.key: d.progress for d in self.last.devices}
        for device in new.devices:
            key = device.key
            track = None if self.rates is None else self.rates.get(key)
            if track is None:
                before = old.get(key)
                if before is None or before == device.progress:
                    estimates[key] = (None, _eta(device.progress, device.status, None))
                    continue
                track = _Rate(before, self.since)  # it had not moved since first seen
                if self.rates is None:
                    self.rates = {}
                self.rates[key] = track
            if device.progress != track.progress and now > track.at:
                speed = (device.progress - track.progress) / (now - track.at)
                rate = track.rate
                track.rate = speed if rate is None else rate + SMOOTHING * (speed - rate)
                track.progress, track.at = device.progress, now
            estimates[key] = (track.rate, _eta(device.progress, device.status, track.rate))
        return estimates

    def estimates(self, export: Export) -> dict[DeviceKey, tuple[float | None, Any]]:
        """``{device: (rate, eta)}`` of ``export`` as last estimated, nothing updated."""
        estimates: dict[DeviceKey, tuple[float | None, Any]] = {}
        for device in export.devices:
            track = None if self.rates is None else self.rates.get(device.key)
            rate = None if track is None else track.rate
            estimates[device.key] = (rate, _eta(device.progress, device.status, rate))
        return estimates

    def events(
        self,
        base: Export | Baseline | None,
        new: Export,
        at: datetime,
        now: float,
        estimates: dict[DeviceKey, tuple[float | None, Any]],
    ) -> list[WatchEvent]:
        """The events that take a watcher from ``base`` to ``new``, terminal one last."""
        eid = self.export_id
        if isinstance(base, Export):
            base = Baseline.of(base)
        if base is not None and base.fingerprint != new.fingerprint:
            return [ExportVanished(eid, at, VanishReason.REPLACED, base.export)]
        out: list[WatchEvent] = []
        previous = None if base is None else base.status
        if previous is not new.status:
            out.append(ExportStatusChanged(eid, at, new.status, previous, new))
        seen = {} if base is None else base.devices
        for d in new.devices:
            before = seen.get(d.key)
            if before is None or before[0] != d.progress or before[1] is not d.status:
                rate, eta = estimates.get(d.key, (None, None))
                out.append(
                    DeviceProgress(
                        eid,
                        at,
                        d.server_id,
                        d.device_id,
                        d.progress,
                        None if before is None else before[0],
                        d.status,
                        new.bandwidth_kbps,
                        rate,
                        eta,
                    )
                )
        if new.status is ExportStatus.COMPLETED:
            out.append(ExportCompleted(eid, at, new))
        elif new.status is ExportStatus.REMOVED:
            out.append(ExportRemoved(eid, at, new))
        return out

    def stall_events(self, moved: bool, new: Export, at: datetime, now: float) -> list[WatchEvent]:
        """`ExportStalled` / `ExportRecovered` for the shared watchers of this id."""
        if moved or self.last is None:
            self.last_move = now
            if self.stalled and moved:
                self.stalled = False
                return [ExportRecovered(self.export_id, at, new)]
            return []
        limit = self.stall_after
        if (
            limit is None
            or self.stalled
            or new.status is not ExportStatus.SYNCING
            or now - self.last_move < limit
        ):
            return []
        self.stalled = True
        return [ExportStalled(self.export_id, at, timedelta(seconds=now - self.last_move), new)]


def _eta(progress: float, status: ExportStatus, rate: float | None) -> timedelta | None:
    if status is ExportStatus.COMPLETED or progress >= 100.0:
        return timedelta(0)
    if rate is None or rate <= 0.0:
        return None
    return timedelta(seconds=(100.0 - progress) / rate)

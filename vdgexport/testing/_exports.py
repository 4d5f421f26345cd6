"""One simulated export: its progress over time and its cached XML rendering."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

__all__ = [
    "COMPLETED",
    "PENDING",
    "REMOVED",
    "SYNCING",
    "SimExport",
    "durations_for",
    "make_uid",
]

PENDING = "PENDING"
SYNCING = "SYNCING"
COMPLETED = "COMPLETED"
REMOVED = "REMOVED"

_FULL = 1000  # progress is kept in tenths of a percent
_RECORDED_FROM = datetime(2024, 1, 19, 10, 0, tzinfo=timezone.utc)
_RECORDED_SPAN = timedelta(minutes=5)
_EARLY = 1e-6  # re-check a little before the next visible change, never after it

_DeviceState = tuple[int, str]
_Key = tuple[str, int, tuple[_DeviceState, ...]]


def make_uid(kind: str, number: int) -> str:
    """A deterministic, GUID-like UID such as ``{8A5C0F1E-...}`` for the ``number``-th ``kind``."""
    digest = hashlib.sha1(f"{kind}-{number}".encode()).hexdigest().upper()
    return f"{{{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}}}"


def durations_for(devices: int, duration: float | Sequence[float]) -> tuple[float, ...]:
    """One duration per device: ``devices`` copies of a number, or the sequence given."""
    if isinstance(duration, (int, float)):
        if devices < 1:
            raise ValueError(f"devices must be at least 1, not {devices!r}")
        durations = (float(duration),) * devices
    else:
        durations = tuple(float(d) for d in duration)
        if not durations or devices not in (1, len(durations)):
            raise ValueError("give one duration per device")
    if any(not math.isfinite(d) or d < 0 for d in durations):
        raise ValueError(f"durations must be finite and not negative: {durations!r}")
    return durations


def format_tenths(tenths: int) -> str:
    """Write a non-negative number of tenths compactly: ``455`` -> ``45.5``, ``1000`` -> ``100``."""
    whole, tenth = divmod(tenths, 10)
    return f"{whole}.{tenth}" if tenth else str(whole)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _device_progress(elapsed: float, duration: float) -> tuple[int, float]:
    """Tenths of progress after ``elapsed`` seconds of syncing, and seconds to the next tenth."""
    if duration <= 0 or elapsed >= duration:
        return _FULL, math.inf
    tenths = min(int(elapsed / duration * _FULL + 1e-9), _FULL - 1)
    return tenths, (tenths + 1) / _FULL * duration - elapsed


class SimExport:
    """A simulated export whose devices go from 0 to 100 linearly in simulator time.

    The rendered ``<export>`` element is cached in :attr:`cache` and stays valid while the
    clock is before :attr:`valid_until`; :meth:`refresh` recomputes it, re-rendering bytes
    only when the visible state (status, bandwidth, progress to one decimal) changed.
    """

    __slots__ = (
        "_bandwidth",
        "_device_heads",
        "_durations",
        "_elapsed",
        "_head",
        "_key",
        "_pending",
        "_since",
        "cache",
        "export_id",
        "path",
        "removed",
        "valid_until",
    )

    def __init__(
        self,
        export_id: str,
        *,
        path: str,
        bandwidth_kbps: float,
        pending: float,
        durations: Sequence[float],
        uids: Sequence[tuple[str, str]],
        now: float,
        spans: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """Start a new export at simulator time ``now``.

        ``spans`` gives each device's start and end time as written in the answers; by
        default device ``i`` covers five minutes from ``2024-01-19 10:00 + i`` minutes.
        """
        self.export_id = export_id
        self.path = path
        self._bandwidth = round(bandwidth_kbps * 10)
        self._pending = pending
        self._durations = tuple(durations)
        self._elapsed = 0.0
        self._since: float | None = now
        self.removed = False
        self._head = (
            f"<export><exportid>{escape(export_id)}</exportid><path>{escape(path)}</path><status>"
        )
        if spans is None:
            spans = [_default_span(index) for index in range(len(uids))]
        self._device_heads = tuple(
            _device_head(server_id, device_id, start, end)
            for (server_id, device_id), (start, end) in zip(uids, spans, strict=True)
        )
        self._key: _Key | None = None
        self.cache = b""
        self.valid_until = -math.inf

    def elapsed(self, now: float) -> float:
        """Seconds this export has been running (pauses and removal excluded)."""
        if self._since is None:
            return self._elapsed
        return self._elapsed + (now - self._since)

    def pause(self, now: float) -> None:
        """Stop the progress where it is."""
        if self._since is not None:
            self._elapsed += now - self._since
            self._since = None
        self.valid_until = -math.inf

    def resume(self, now: float) -> None:
        """Let a paused export move again (a removed one stays frozen)."""
        if self._since is None and not self.removed:
            self._since = now
        self.valid_until = -math.inf

    def remove(self, now: float) -> None:
        """Mark the export removed and freeze its progress."""
        self.pause(now)
        self.removed = True

    def status(self, now: float) -> str:
        """The export's status at ``now``."""
        return self._state(now)[0][0]

    def refresh(self, now: float) -> bytes:
        """Bring :attr:`cache` and :attr:`valid_until` up to ``now`` and return the bytes."""
        key, wait = self._state(now)
        if key != self._key:
            self._key = key
            self.cache = self._render(key)
        self.valid_until = now + wait - _EARLY if wait != math.inf else math.inf
        return self.cache

    def _state(self, now: float) -> tuple[_Key, float]:
        syncing_for = self.elapsed(now) - self._pending
        if self.removed:
            devices = tuple(_removed_device(syncing_for, d) for d in self._durations)
            return (REMOVED, 0, devices), math.inf
        if syncing_for < 0:
            wait = -syncing_for if self._since is not None else math.inf
            return (PENDING, 0, ((0, PENDING),) * len(self._durations)), wait
        states: list[_DeviceState] = []
        wait = math.inf
        for duration in self._durations:
            tenths, until_next = _device_progress(syncing_for, duration)
            states.append((tenths, COMPLETED if tenths == _FULL else SYNCING))
            wait = min(wait, until_next)
        if wait == math.inf:
            return (COMPLETED, 0, tuple(states)), wait
        if self._since is None:
            wait = math.inf
        return (SYNCING, self._bandwidth, tuple(states)), wait

    def _render(self, key: _Key) -> bytes:
        status, bandwidth, devices = key
        parts = [self._head, status, "</status><bandwidth>", format_tenths(bandwidth)]
        parts.append("</bandwidth><devices>")
        for head, (tenths, device_status) in zip(self._device_heads, devices, strict=True):
            parts += [head, format_tenths(tenths), "</progress><status>", device_status]
            parts.append("</status></device>")
        parts.append("</devices></export>")
        return "".join(parts).encode()


def _removed_device(syncing_for: float, duration: float) -> _DeviceState:
    if syncing_for < 0:
        return 0, REMOVED
    tenths, _ = _device_progress(syncing_for, duration)
    return tenths, COMPLETED if tenths == _FULL else REMOVED


def _default_span(index: int) -> tuple[str, str]:
    start = _RECORDED_FROM + timedelta(minutes=index)
    return _timestamp(start), _timestamp(start + _RECORDED_SPAN)


def _device_head(server_id: str, device_id: str, start: str, end: str) -> str:
    return (
        f"<device><serverid>{escape(server_id)}</serverid><deviceid>{escape(device_id)}</deviceid>"
        f"<starttime>{escape(start)}</starttime><endtime>{escape(end)}</endtime><progress>"
    )

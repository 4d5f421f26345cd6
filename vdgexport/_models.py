"""Typed, immutable views of what ``getExportVideoStatus`` reports."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import overload

__all__ = [
    "ClientStats",
    "DeviceExport",
    "DeviceSpan",
    "Export",
    "ExportId",
    "ExportList",
    "ExportStatus",
    "ServerInfo",
]

#: Export ids are accepted as ``int`` or ``str`` and always reported as ``str``.
ExportId = int | str


class ExportStatus(enum.Enum):
    """The status of an export or of one device in it.

    The server writes statuses in any case with stray whitespace; anything that is not one of
    the four documented values is `UNKNOWN` (the raw text stays on the model).

    Example:
        >>> ExportStatus.parse(" completed ")
        <ExportStatus.COMPLETED: 'COMPLETED'>
        >>> print(ExportStatus.COMPLETED)
        COMPLETED
    """

    SYNCING = "SYNCING"
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    REMOVED = "REMOVED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        """The value, as the server writes it: ``COMPLETED``, not ``ExportStatus.COMPLETED``."""
        return self.value

    @classmethod
    def parse(cls, text: str | None) -> ExportStatus:
        """The status named by ``text``, compared case-insensitively, whitespace stripped."""
        if text is None:
            return cls.UNKNOWN
        return _STATUS_BY_TEXT.get(text) or _STATUS_BY_TEXT.get(text.strip().upper(), cls.UNKNOWN)

    @property
    def is_terminal(self) -> bool:
        """``True`` for `COMPLETED` and `REMOVED`: the export will not change again."""
        return self is ExportStatus.COMPLETED or self is ExportStatus.REMOVED


_STATUS_BY_TEXT: dict[str, ExportStatus] = {s.value: s for s in ExportStatus}
del _STATUS_BY_TEXT["UNKNOWN"]


@dataclass(frozen=True, slots=True)
class DeviceExport:
    """One device's part of an export.

    Attributes:
        server_id: the recording server's UID, an opaque string.
        device_id: the device's UID, an opaque string.
        start_time: start of the exported span, aware UTC, or ``None`` if absent or unreadable.
        end_time: end of the exported span, aware UTC, or ``None`` if absent or unreadable.
        progress: 0..100.
        status: the device's `ExportStatus`.
        raw_status: the status text as the server wrote it.
        raw_start_time: the start time as the server wrote it.
        raw_end_time: the end time as the server wrote it.
    """

    server_id: str
    device_id: str
    start_time: datetime | None
    end_time: datetime | None
    progress: float
    status: ExportStatus
    raw_status: str = field(default="", repr=False)
    raw_start_time: str = field(default="", repr=False)
    raw_end_time: str = field(default="", repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(server_id, device_id)``: what names this device within its export."""
        return (self.server_id, self.device_id)


@dataclass(frozen=True, slots=True)
class Export:
    """One export and its devices.

    Attributes:
        export_id: the id, always a ``str``.
        path: where the server writes the export.
        status: the export's `ExportStatus`.
        bandwidth_kbps: export speed in kilobits per second, ``None`` if not reported.
        devices: the devices, in the server's order.
        raw_status: the status text as the server wrote it.
    """

    export_id: str
    path: str
    status: ExportStatus
    bandwidth_kbps: float | None
    devices: tuple[DeviceExport, ...]
    raw_status: str = field(default="", repr=False)

    @property
    def progress(self) -> float:
        """The mean progress of the devices, 0..100 (0 when there are none)."""
        devices = self.devices
        if not devices:
            return 0.0
        return sum(d.progress for d in devices) / len(devices)

    @property
    def fingerprint(self) -> tuple[str, frozenset[tuple[str, str, str, str]]]:
        """What identifies this export beyond its id: its path and its device spans.

        Two exports with the same id and different fingerprints are different exports (the
        id was reused after a PluginManager restart).
        """
        spans = frozenset(
            (d.server_id, d.device_id, d.raw_start_time, d.raw_end_time) for d in self.devices
        )
        return (self.path, spans)


@dataclass(frozen=True, slots=True)
class ExportList:
    """The exports of a whole-list answer, in the server's order: a sequence of `Export`.

    It is registered as a `collections.abc.Sequence` and supports ``len``, iteration,
    indexing and ``in``; it does not inherit ``Sequence.count()``, since ``count`` is the
    server's attribute here.

    Attributes:
        exports: the exports.
        count: the server's ``count`` attribute (``None`` if absent or not a number); it may
            disagree with ``len(self)``, and both are kept.

    Example:
        ```python
        exports = await client.list_exports()
        for export in exports:
            print(export.export_id, export.status.value, f"{export.progress:.0f}%")
        mine = exports.get(42)
        ```
    """

    exports: tuple[Export, ...] = ()
    count: int | None = None
    _index: dict[str, Export] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._index.update((e.export_id, e) for e in reversed(self.exports))

    def get(self, export_id: ExportId) -> Export | None:
        """The export with this id (the first one, if the server listed it twice), or ``None``."""
        return self._index.get(str(export_id))

    def __len__(self) -> int:
        return len(self.exports)

    def __iter__(self) -> Iterator[Export]:
        return iter(self.exports)

    def __contains__(self, value: object) -> bool:
        return value in self.exports

    @overload
    def __getitem__(self, index: int) -> Export: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Export]: ...
    def __getitem__(self, index: int | slice) -> Export | Sequence[Export]:
        return self.exports[index]


Sequence.register(ExportList)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What a client has done so far: `Client.stats` (also on a closed client).

    Attributes:
        requests: HTTP requests sent, on every path: status polls, confirmations, logins,
            ``/info``, ``exportVideo``.
        failures: requests that ended in an error: a network failure or timeout, a non-2xx
            status, an unusable body. An answer with a negative errorcode is an answer,
            not a failure.
        watches: open watches: entered or being iterated, not yet ended or left.
        watched_ids: distinct export ids being polled.
        list_watches: open list watches (`Client.watch_list`).

    Example:
        ```python
        stats = client.stats()
        print(f"{stats.requests} requests, {stats.failures} failed, {stats.watches} watches")
        ```
    """

    requests: int
    failures: int
    watches: int
    watched_ids: int
    list_watches: int = 0


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a server's ``/info`` reports.

    Attributes:
        version: the Sense version as the server wrote it, e.g. ``"2.8.0"``.
        utc: the server's clock, aware UTC, or ``None`` if absent or unreadable.
    """

    version: str
    utc: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceSpan:
    """One device of a new export and the span of its recording to export.

    Attributes:
        server_id: the recording server's UID, an opaque string.
        device_id: the device's UID, an opaque string.
        start: start of the span, a timezone-aware `datetime` (sent in UTC).
        end: end of the span, aware and after ``start``.

    Raises:
        ValueError: a naive datetime, or ``end`` not after ``start``.

    Example:
        ```python
        span = DeviceSpan("{SERVER-UID}", "{DEVICE-UID}", start, start + timedelta(minutes=5))
        ```
    """

    server_id: str
    device_id: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime):
                raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(
                    f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)), "
                    f"not the naive {moment.isoformat(' ')}"
                )
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")

"""The events of a watch: what changed, and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Union

from ._models import Export, ExportStatus

__all__ = [
    "ConnectionLost",
    "ConnectionRestored",
    "DeviceProgress",
    "ExportCompleted",
    "ExportRecovered",
    "ExportRemoved",
    "ExportStalled",
    "ExportStatusChanged",
    "ExportVanished",
    "TerminalEvent",
    "VanishReason",
    "WatchEvent",
]


class VanishReason(enum.Enum):
    """Why a watched export id no longer names the export that was watched."""

    #: The server answers -57 (invalid exportid): the PluginManager restarted, or the id
    #: never existed.
    NOT_FOUND = "not_found"
    #: The id now names another export (a different path or device set): the PluginManager
    #: restarted and reused the id.
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class DeviceProgress:
    """A device's progress or status changed.

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw the change answered (aware UTC).
        server_id: the device's recording server UID.
        device_id: the device's UID.
        progress: 0..100.
        previous_progress: the progress of the previous event of this device, ``None`` first.
        status: the device's status.
        bandwidth_kbps: the export's bandwidth at that poll.
        rate: smoothed progress in percent per second; ``None`` until it can be estimated.
        eta: estimated time left; ``None`` until it can be estimated.
    """

    export_id: str
    observed_at: datetime
    server_id: str
    device_id: str
    progress: float
    previous_progress: float | None
    status: ExportStatus
    bandwidth_kbps: float | None
    rate: float | None
    eta: timedelta | None


@dataclass(frozen=True, slots=True)
class ExportStatusChanged:
    """The export's status changed (the first poll gives one with ``previous_status=None``).

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw the change answered (aware UTC).
        status: the new status.
        previous_status: the status before, ``None`` at the first poll.
        export: the whole export as seen by that poll.
    """

    export_id: str
    observed_at: datetime
    status: ExportStatus
    previous_status: ExportStatus | None
    export: Export


@dataclass(frozen=True, slots=True)
class ExportStalled:
    """An export in progress has not moved for ``stall_after`` seconds (not terminal).

    Attributes:
        export_id: the watched export.
        observed_at: when the stall was noticed (aware UTC).
        stalled_for: how long nothing has moved.
        export: the export as last seen.
    """

    export_id: str
    observed_at: datetime
    stalled_for: timedelta
    export: Export


@dataclass(frozen=True, slots=True)
class ExportRecovered:
    """A stalled export moved again (not terminal).

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw it move answered (aware UTC).
        export: the export as seen by that poll.
    """

    export_id: str
    observed_at: datetime
    export: Export


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Polls for the export have failed without a break for ``lost_after`` seconds.

    Not terminal: the watch goes on, and `ConnectionRestored` follows at the first poll
    that answers. Once per outage; a watch that joins during one gets it at once.

    Attributes:
        export_id: the watched export.
        observed_at: when the outage was noticed (aware UTC).
        error: the last error as text, its type and message (e.g.
            ``"TransportError: ConnectError for http://vdg/command: ..."``).
        failing_for: how long the polls have failed so far.
    """

    export_id: str
    observed_at: datetime
    error: str
    failing_for: timedelta


@dataclass(frozen=True, slots=True)
class ConnectionRestored:
    """A poll answered again after `ConnectionLost` (not terminal).

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that answered came back (aware UTC).
        down_for: how long the polls failed, from the first failure to this answer.
    """

    export_id: str
    observed_at: datetime
    down_for: timedelta


@dataclass(frozen=True, slots=True)
class ExportCompleted:
    """Terminal: the export completed.

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw it answered (aware UTC).
        export: the final export.
    """

    export_id: str
    observed_at: datetime
    export: Export


@dataclass(frozen=True, slots=True)
class ExportRemoved:
    """Terminal: the export was removed before it completed.

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw it answered (aware UTC).
        export: the export as the server last reported it.
    """

    export_id: str
    observed_at: datetime
    export: Export


@dataclass(frozen=True, slots=True)
class ExportVanished:
    """Terminal: the id no longer names the watched export.

    Attributes:
        export_id: the watched export.
        observed_at: when the poll that saw it answered (aware UTC).
        reason: `VanishReason.NOT_FOUND` (-57) or `VanishReason.REPLACED` (id reused).
        last_seen: the export as last seen before it vanished, ``None`` if never seen.
    """

    export_id: str
    observed_at: datetime
    reason: VanishReason
    last_seen: Export | None


#: Every event a watch yields; ``match`` on it can be checked for exhaustiveness.
WatchEvent = Union[  # noqa: UP007 - a runtime alias that works on Python 3.10
    DeviceProgress,
    ExportStatusChanged,
    ExportStalled,
    ExportRecovered,
    ConnectionLost,
    ConnectionRestored,
    ExportCompleted,
    ExportRemoved,
    ExportVanished,
]

#: The events that end a watch; always the last one it yields.
TerminalEvent = Union[ExportCompleted, ExportRemoved, ExportVanished]  # noqa: UP007

TERMINAL_TYPES = (ExportCompleted, ExportRemoved, ExportVanished)

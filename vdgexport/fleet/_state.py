"""The current state of one export as the fleet keeps it: what a new watch would give first.

The state holds only what the fleet's stream has told: each device appears as its last
written `DeviceProgress` said, so that a subscriber reading the state and then the stream
after it sees every change once. The export inside the status event is the snapshot the last
event that carried one reported, with each device's progress and status, and the bandwidth,
brought up to date by every `DeviceProgress` written since (what ``GET /api/exports`` of
``vdgexport serve --redis`` shows).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import anyio.lowlevel

import vdgexport
from vdgexport import (
    DeviceProgress,
    Export,
    ExportStatusChanged,
    ExportVanished,
    TerminalEvent,
    WatchEvent,
)

#: The terminal event classes, for ``isinstance``.
TERMINAL: tuple[type, ...] = typing.get_args(TerminalEvent)

DeviceKey = tuple[str, str]
#: How many stored states are read between two turns of the other tasks (a few ms).
SLICE = 50

_A = TypeVar("_A")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class ExportState:
    """One export's last written snapshot, devices, terminal event, checkpoint and count.

    Attributes:
        export: the export as the last event that carried one reported it, brought up to
            date by the `DeviceProgress` events written since.
        observed_at: when the last event was observed.
        terminal: the terminal event, once there is one.
        checkpoint: the watch checkpoint after the last event written.
        seq: how many events of this export the fleet has written in this epoch.
        devices: the last written `DeviceProgress` of each device.
    """

    export: Export | None
    observed_at: datetime | None
    terminal: WatchEvent | None
    checkpoint: dict[str, Any]
    seq: int = 0
    devices: dict[DeviceKey, DeviceProgress] = field(default_factory=dict)

    @classmethod
    def fresh(cls, seq: int = 0) -> ExportState:
        """Nothing written yet (``seq`` goes on from an earlier export of the same id)."""
        return cls(None, None, None, {}, seq)

    def after(self, event: WatchEvent, checkpoint: dict[str, Any]) -> ExportState:
        """The state once ``event`` is written, with the watch's checkpoint after it."""
        export, devices = self.export, self.devices
        carried = getattr(event, "export", None)
        if isinstance(carried, Export):
            export = carried
        elif isinstance(event, ExportVanished) and event.last_seen is not None:
            export = event.last_seen
        if isinstance(event, DeviceProgress):
            devices = {**devices, (event.server_id, event.device_id): event}
            if export is not None:
                export = _with_device(export, event)
        terminal = event if isinstance(event, TERMINAL) else self.terminal
        return ExportState(export, event.observed_at, terminal, checkpoint, self.seq + 1, devices)

    @property
    def done(self) -> bool:
        """Whether the export's watch has ended (its terminal event is written)."""
        return self.terminal is not None

    def first_events(self) -> list[WatchEvent]:
        """What a new watch of the export would give first, as far as the stream has told."""
        if isinstance(self.terminal, ExportVanished) or self.export is None:
            return [self.terminal] if self.terminal is not None else []
        export, at = self.export, self.observed_at
        assert at is not None
        events: list[WatchEvent] = [
            ExportStatusChanged(export.export_id, at, export.status, None, export)
        ]
        order = [(d.server_id, d.device_id) for d in export.devices]
        order += [key for key in self.devices if key not in set(order)]
        for key in order:
            last = self.devices.get(key)
            if last is not None:
                events.append(_first(last, at))
        if self.terminal is not None:
            events.append(self.terminal)
        return events

    def to_json(self) -> str:
        events = [vdgexport.event_to_dict(e) for e in self.first_events()]
        return json.dumps({"checkpoint": self.checkpoint, "events": events, "seq": self.seq})

    @classmethod
    def from_json(cls, text: str) -> ExportState:
        """The state written by `to_json` (`ValueError` if it is not one)."""
        events = state_events(text)
        try:
            data = json.loads(text)
            checkpoint, seq = dict(data["checkpoint"]), int(data["seq"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a fleet export state: {exc}") from None
        state = cls.fresh()
        for event in events:
            state = state.after(event, checkpoint)
        return ExportState(
            state.export, state.observed_at, state.terminal, checkpoint, seq, state.devices
        )


def export_order(export_id: str) -> tuple[int, int, str, str]:
    """Sort key of export ids: numbers (ASCII digits, any length) in numeric order, then other
    ids as text. Never ``int()``: an id is an opaque string ("²" is a digit to Python)."""
    if export_id.isascii() and export_id.isdigit():
        number = export_id.lstrip("0") or "0"
        return (0, len(number), number, export_id)
    return (1, 0, export_id, "")


async def sliced(function: Callable[[_A], _R], items: Iterable[_A]) -> list[_R]:
    """``[function(item) for item in items]``, letting the other tasks run after every
    `SLICE` items: the thousands of states of a big fleet never hold the event loop."""
    results: list[_R] = []
    for index, item in enumerate(items):
        if index and index % SLICE == 0:
            await anyio.lowlevel.checkpoint()
        results.append(function(item))
    return results


def state_events(text: str) -> list[WatchEvent]:
    """The first events of a stored state (for subscribers, who need no checkpoint)."""
    try:
        return [vdgexport.event_from_dict(e) for e in json.loads(text)["events"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a fleet export state: {exc}") from None


def _with_device(export: Export, event: DeviceProgress) -> Export:
    """``export`` with ``event``'s device progress and status, and the export's bandwidth."""
    devices = tuple(
        replace(
            d,
            progress=event.progress,
            status=event.status,
            raw_status=d.raw_status if d.status is event.status else event.status.value,
        )
        if (d.server_id, d.device_id) == (event.server_id, event.device_id)
        else d
        for d in export.devices
    )
    return replace(export, devices=devices, bandwidth_kbps=event.bandwidth_kbps)


def _first(last: DeviceProgress, at: datetime) -> DeviceProgress:
    """A device as a new watch first reports it: no previous value, no rate yet."""
    return DeviceProgress(
        last.export_id,
        at,
        last.server_id,
        last.device_id,
        last.progress,
        None,
        last.status,
        last.bandwidth_kbps,
        None,
        None,
    )

"""What an ``exportVideo`` POST body asks for: a new export, or a removal."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element

from ._sessions import child_text, local, read_xml

__all__ = ["NewExport", "Removal", "SpanRequest", "read_export_video"]

_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class SpanRequest:
    """One ``<device>`` of a new export: its UIDs and span (times as the client wrote them)."""

    server_id: str
    device_id: str
    start: str
    end: str
    seconds: float


@dataclass(frozen=True, slots=True)
class NewExport:
    """``<export><devices>...</devices><path/><bandwidth/></export>``."""

    devices: tuple[SpanRequest, ...]
    path: str | None
    bandwidth_kbps: float | None


@dataclass(frozen=True, slots=True)
class Removal:
    """``<export><exportid>ID</exportid><remove>true</remove></export>`` (the simulator's
    guess at the undocumented removal; `vdgexport.Client.remove_export` sends the same)."""

    export_id: str


def read_export_video(body: bytes) -> NewExport | Removal | int:
    """What ``body`` asks for, or the (negative) error code to answer."""
    root = read_xml(body)
    if root is None or local(root.tag) != "export":
        return -10
    remove = child_text(root, "remove")
    if remove is not None and remove.lower() in ("true", "1", "yes"):
        export_id = child_text(root, "exportid")
        return Removal(export_id) if export_id else -10
    devices = next((c for c in root if local(c.tag) == "devices"), None)
    children = () if devices is None else devices
    spans = [_span(d) for d in children if local(d.tag) == "device"]
    if not spans:
        return -10
    for span in spans:
        if isinstance(span, int):
            return span
    bandwidth = child_text(root, "bandwidth")
    kbps = _number(bandwidth) if bandwidth else None
    if bandwidth and kbps is None:
        return -10
    path = child_text(root, "path")
    return NewExport(tuple(s for s in spans if isinstance(s, SpanRequest)), path or None, kbps)


def _span(device: Element) -> SpanRequest | int:
    server_id, device_id, start, end = (
        child_text(device, tag) for tag in ("serverid", "deviceid", "starttime", "endtime")
    )
    if not (server_id and device_id and start and end):
        return -10
    start_at, end_at = _time(start), _time(end)
    if start_at is None or end_at is None or end_at <= start_at:
        return -4
    return SpanRequest(server_id, device_id, start, end, (end_at - start_at).total_seconds())


def _time(text: str) -> datetime | None:
    for pattern in _FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None

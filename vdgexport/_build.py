"""Typed models from parsed XML: elements (or their texts) to `Export` and `DeviceExport`.

Tolerant of what the server may do (children in any order, unknown children, tags in any
case or namespace, ``45%`` progress), and fast: tens of thousands of models per answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime, timezone
from itertools import compress
from operator import attrgetter
from typing import Any
from xml.etree.ElementTree import Element

from ._models import _STATUS_BY_TEXT, DeviceExport, Export, ExportList, ExportStatus

__all__ = [
    "bandwidth_of",
    "convert_timestamp",
    "device_from",
    "device_from_texts",
    "export_elements",
    "export_from",
    "export_from_texts",
    "exports_from",
    "int_or_none",
    "local",
    "progress_of",
    "read_timestamp",
]

_UTC = timezone.utc
_EXPORT_TAGS = frozenset({"exportid", "path", "status", "bandwidth", "devices"})
_DEVICE_ORDER = ("serverid", "deviceid", "starttime", "endtime", "progress", "status")
_DEVICE_SLOTS = {tag: slot for slot, tag in enumerate(_DEVICE_ORDER)}


def local(tag: str) -> str:
    """A tag without namespace, lower-cased: tags are matched case-insensitively."""
    return tag.rpartition("}")[2].lower()


def exports_from(root: Element) -> ExportList:
    """The `ExportList` under a ``<result>`` element."""
    elements, count = export_elements(root)
    return ExportList(tuple([export_from(e) for e in elements]), count)


def export_elements(root: Element) -> tuple[list[Element], int | None]:
    """The ``<export>`` elements under a ``<result>`` element, and the ``count`` beside."""
    container = next(iter(_children(root, "exports")), None)
    if container is None:
        return [], None
    count = int_or_none(container.get("count"))
    # One test per distinct tag, not per child: a list may hold a million unknown siblings.
    every = set(map(_TAG, container))
    tags = {t for t in every if t == "export" or local(t) == "export"}
    if not tags:
        return [], count
    if tags == every:
        return list(container), count
    return list(compress(container, map(tags.__contains__, map(_TAG, container)))), count


def export_from(elem: Element) -> Export:
    """One `Export` from its ``<export>`` element (unknown children are ignored)."""
    if not len(elem):
        return _EMPTY
    export_id = path = raw_status = raw_bandwidth = None
    devices: tuple[DeviceExport, ...] = ()
    for child in elem:
        tag = child.tag if child.tag in _EXPORT_TAGS else local(child.tag)
        if tag == "devices":
            devices = tuple(
                [device_from(d) for d in child if d.tag == "device" or local(d.tag) == "device"]
            )
        elif tag == "exportid":
            export_id = child.text
        elif tag == "path":
            path = child.text
        elif tag == "status":
            raw_status = child.text
        elif tag == "bandwidth":
            raw_bandwidth = child.text
    return export_from_texts(export_id, path, raw_status, raw_bandwidth, devices)


_TAG = attrgetter("tag")


def export_from_texts(
    export_id: str | None,
    path: str | None,
    raw_status: str | None,
    bandwidth: str | None,
    devices: tuple[DeviceExport, ...],
) -> Export:
    """One `Export` from the texts of its children (``None``: absent or empty)."""
    raw_status = raw_status or ""
    status = _STATUS_BY_TEXT.get(raw_status) or ExportStatus.parse(raw_status)
    return _new_export(
        export_id.strip() if export_id else "",
        path.strip() if path else "",
        status,
        bandwidth_of(bandwidth),
        devices,
        _STRINGS.get(raw_status, raw_status),
    )


def device_from(elem: Element) -> DeviceExport:
    """One `DeviceExport` from its ``<device>`` element (unknown children are ignored)."""
    if len(elem) == 6:  # the documented children in the documented order: no lookups
        a, b, c, d, e, f = elem
        if (a.tag, b.tag, c.tag, d.tag, e.tag, f.tag) == _DEVICE_ORDER:
            return device_from_texts(a.text, b.text, c.text, d.text, e.text, f.text)
    texts: list[str | None] = [None] * 6
    slot_of = _DEVICE_SLOTS.get
    for child in elem:
        slot = slot_of(child.tag)
        if slot is None:
            slot = slot_of(local(child.tag))
            if slot is None:
                continue
        texts[slot] = child.text
    return device_from_texts(*texts)


def device_from_texts(
    raw_server: str | None,
    raw_device: str | None,
    raw_start: str | None,
    raw_end: str | None,
    raw_progress: str | None,
    raw_status: str | None,
) -> DeviceExport:
    """One `DeviceExport` from the texts of its six children (``None``: absent or empty)."""
    raw_status = raw_status or ""
    start = raw_start.strip() if raw_start else ""
    start, start_time = _TIMESTAMPS.get(start) or _timestamp(start)
    end = raw_end.strip() if raw_end else ""
    end, end_time = _TIMESTAMPS.get(end) or _timestamp(end)
    server = raw_server.strip() if raw_server else ""
    return _new_device(
        _STRINGS.get(server) or _intern(server),
        raw_device.strip() if raw_device else "",
        start_time,
        end_time,
        progress_of(raw_progress),
        _STATUS_BY_TEXT.get(raw_status) or ExportStatus.parse(raw_status),
        _STRINGS.get(raw_status, raw_status),
        start,
        end,
    )


def progress_of(text: str | None) -> float:
    """A device's progress: 0..100 (out of range clamped; absent or unreadable: 0)."""
    try:
        progress: float | None = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        progress = _number(text)
    if progress is None or not 0.0 <= progress <= 100.0:
        progress = 0.0 if progress is None or progress < 0.0 or math.isnan(progress) else 100.0
    return progress


# The generated ``__init__`` of a frozen dataclass pays a global lookup and a call of
# ``object.__setattr__`` per field. The parser builds tens of thousands of models per
# answer, so it sets the slots through their descriptors instead: the same objects, equal
# to what ``__init__`` makes (tests/test_parse.py checks), about twice as fast.
_D = [getattr(DeviceExport, f.name).__set__ for f in fields(DeviceExport)]
_E = [getattr(Export, f.name).__set__ for f in fields(Export)]


def _slot_maker(cls: type, setters: list[Any]) -> Callable[..., Any]:
    """A function of one value per field, in order, returning a new ``cls`` with each
    slot set from its value: generated, as `dataclasses` generates ``__init__``, so that
    every setter is a local bound once (a loop over them costs half as much again)."""
    names = [f"v{k}" for k in range(len(setters))]
    binds = "".join(f", _s{k}=_setters[{k}]" for k in range(len(setters)))
    body = "".join(f"    _s{k}(obj, {name})\n" for k, name in enumerate(names))
    source = (
        f"def make({', '.join(names)}, _new=object.__new__, _cls=_cls{binds}):\n"
        f"    obj = _new(_cls)\n{body}    return obj\n"
    )
    namespace: dict[str, Any] = {"_cls": cls, "_setters": setters}
    exec(source, namespace)  # the source is made here of names only, never of input
    make: Callable[..., Any] = namespace["make"]
    make.__qualname__ = make.__name__ = f"new_{cls.__name__}"
    return make


_new_device: Callable[..., DeviceExport] = _slot_maker(DeviceExport, _D)
_new_export: Callable[..., Export] = _slot_maker(Export, _E)


def _children(elem: Element, tag: str) -> Iterable[Element]:
    return (c for c in elem if c.tag == tag or local(c.tag) == tag)


def int_or_none(text: str | None) -> int | None:
    """``text`` as an ``int``; ``None`` if absent or not a number (or too long to be one)."""
    text = None if text is None else text.strip()
    if not text or len(text) > 40:  # int() of a long text costs more than linear time
        return None
    try:
        return int(text)
    except ValueError:
        return None


def bandwidth_of(text: str | None) -> float | None:
    """An export's bandwidth: a finite number, else ``None`` (absent, unreadable, NaN or
    infinite: no speed a person can be shown, nor JSON)."""
    value = _number(text)
    return value if value is not None and math.isfinite(value) else None


def _number(text: str | None) -> float | None:
    """``45``, ``45.5``, ``45%`` or `` 45 % `` as a float; ``None`` if absent or unreadable."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return float(text.strip().removesuffix("%").strip().replace(",", "."))
        except ValueError:
            return None


# Texts that recur across exports and polls (timestamps, server UIDs, statuses) are kept
# once: the models of thousands of watched exports then share them (memory per watch), and
# a timestamp is converted once, not at every poll. Only short texts are kept (a timestamp
# is 23 characters, a UID 38), at most _CACHE_LIMIT of each: about 1.5 MB in all, whatever
# the answers held, so the memory of long texts comes back with the answers that held them.
_TIMESTAMPS: dict[str, tuple[str, datetime | None]] = {}
_STRINGS: dict[str, str] = {s.value: s.value for s in ExportStatus}
_CACHE_LIMIT = 8192  # entries of each cache
_CACHED_LENGTH = 64  # characters: longer texts are not kept


def _intern(text: str) -> str:
    found = _STRINGS.get(text)
    if found is None:
        if len(text) > _CACHED_LENGTH:
            return text
        if len(_STRINGS) >= _CACHE_LIMIT:
            _STRINGS.clear()
            _STRINGS.update((s.value, s.value) for s in ExportStatus)
        found = _STRINGS[text] = text
    return found


def read_timestamp(text: str) -> datetime | None:
    """A VDG Sense timestamp (UTC unless it says otherwise) as aware UTC; ``None`` if
    unreadable."""
    return _timestamp(text.strip())[1]


def _timestamp(text: str) -> tuple[str, datetime | None]:
    """``yyyy-mm-dd hh:nn:ss[.zzz]`` (UTC): ``(the text, an aware datetime or None)``."""
    found = _TIMESTAMPS.get(text)
    if found is not None:
        return found
    found = (text, convert_timestamp(text))
    if len(text) <= _CACHED_LENGTH:
        if len(_TIMESTAMPS) >= _CACHE_LIMIT:
            _TIMESTAMPS.clear()
        _TIMESTAMPS[text] = found
    return found


def convert_timestamp(text: str) -> datetime | None:
    """`read_timestamp` without the cache."""
    try:  # the documented form, read as UTC in one call (the offset gives timezone.utc)
        return datetime.fromisoformat(text + "+00:00")
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
        for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"):
            try:
                value = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if value is None:
        return None
    try:
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    except (OverflowError, ValueError):  # e.g. 9999-12-31 23:59:59-01:00
        return None


_EMPTY = export_from_texts(None, None, None, None, ())  # every <export/> (models are frozen)

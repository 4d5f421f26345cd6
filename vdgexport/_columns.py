"""Models of many plainly written exports at once, column by column.

`_template` reads the texts of a batch of exports with regular expressions; turning them into
models one device at a time costs a few microseconds of interpreted Python each, more than
reading them. Here each column (all server ids, all start times, all progress texts) is
converted by one ``map`` of a C function, and the slots of all models are set column by
column the same way; only unusual values (a ``45%`` progress, an empty timestamp, a text not
seen before) fall back to the one-by-one functions of `_build`, which define the result:
both give equal models (tests/test_differential.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime
from itertools import compress, repeat
from math import isfinite, isnan
from operator import add, not_
from typing import Any

from ._build import (
    _CACHE_LIMIT,
    _CACHED_LENGTH,
    _D,
    _E,
    _STRINGS,
    _TIMESTAMPS,
    _intern,
    bandwidth_of,
    convert_timestamp,
    progress_of,
)
from ._models import _STATUS_BY_TEXT, DeviceExport, Export, ExportStatus

__all__ = ["devices_from_rows", "exports_from_rows"]

DeviceRow = tuple[str, str, str, str, str, str]
ExportRow = tuple[str, str, str, str]
_fromisoformat = datetime.fromisoformat


def devices_from_rows(rows: Sequence[DeviceRow]) -> list[DeviceExport]:
    """`_build.device_from_texts` of each row (server, device, start, end, progress,
    status), in one pass per column."""
    if not rows:
        return []
    servers, devices, starts, ends, progresses, statuses = zip(*rows, strict=True)
    start_texts, start_times = _stamps(list(map(str.strip, starts)))
    end_texts, end_times = _stamps(list(map(str.strip, ends)))
    columns = (
        _shared(list(map(str.strip, servers))),
        list(map(str.strip, devices)),
        start_times,
        end_times,
        _progress(progresses),
        _statuses(statuses),
        list(map(_STRINGS.get, statuses, statuses)),
        start_texts,
        end_texts,
    )
    devices_made: list[DeviceExport] = _objects(DeviceExport, _D, columns, len(rows))
    return devices_made


def exports_from_rows(
    rows: Sequence[ExportRow], devices: Sequence[tuple[DeviceExport, ...]]
) -> list[Export]:
    """`_build.export_from_texts` of each row (id, path, status, bandwidth, and maybe more
    texts, ignored) and its devices."""
    if not rows:
        return []
    ids, paths, statuses, bandwidths, *_ = zip(*rows, strict=True)
    try:
        speeds: list[float | None] = list(map(float, bandwidths))
    except ValueError:
        speeds = list(map(bandwidth_of, bandwidths))
    else:  # a NaN or an infinity makes the sum one (so may two huge values: still right)
        if not isfinite(sum(speeds)):  # type: ignore[arg-type]  # no None in it
            speeds = list(map(bandwidth_of, bandwidths))
    columns = (
        list(map(str.strip, ids)),
        list(map(str.strip, paths)),
        _statuses(statuses),
        speeds,
        devices,
        list(map(_STRINGS.get, statuses, statuses)),
    )
    exports: list[Export] = _objects(Export, _E, columns, len(rows))
    return exports


def _objects(cls: type, setters: list[Any], columns: Sequence[Sequence[Any]], n: int) -> Any:
    """``n`` new instances of the slotted ``cls``, slot k set from ``columns[k]``."""
    objects: list[Any] = list(map(object.__new__, repeat(cls, n)))
    for setter, column in zip(setters, columns, strict=True):
        deque(map(setter, objects, column), maxlen=0)
    return objects


def _shared(texts: list[str]) -> list[str]:
    found = list(map(_STRINGS.get, texts))
    if None not in found:
        return found  # type: ignore[return-value]  # no None in it
    return [_intern(t) if f is None else f for t, f in zip(texts, found, strict=True)]


def _stamps(texts: list[str]) -> tuple[Sequence[str], Sequence[datetime | None]]:
    """``(the shared texts, their datetimes)`` through the timestamp cache."""
    found = list(map(_TIMESTAMPS.get, texts))
    if None in found:
        cold = found.count(None) == len(found)
        missing = texts if cold else compress(texts, map(not_, found))
        new = _convert(list(dict.fromkeys(missing)))
        if cold:
            found = list(map(new.__getitem__, texts))
        else:
            found = [new[t] if f is None else f for t, f in zip(texts, found, strict=True)]
        if len(new) <= _CACHE_LIMIT and max(map(len, new)) <= _CACHED_LENGTH:
            if len(_TIMESTAMPS) + len(new) > _CACHE_LIMIT:
                _TIMESTAMPS.clear()
            _TIMESTAMPS.update(new)
    shared, values = zip(*found, strict=True)
    return shared, values


def _convert(texts: list[str]) -> dict[str, tuple[str, datetime | None]]:
    try:  # the documented form, all at once
        values: list[datetime | None] = list(map(_fromisoformat, map(add, texts, repeat("+00:00"))))
    except ValueError:  # one at a time, each as `_build` reads it
        values = list(map(convert_timestamp, texts))
    return dict(zip(texts, zip(texts, values, strict=True), strict=True))


def _progress(texts: Sequence[str]) -> Sequence[float]:
    try:
        values = list(map(float, texts))
    except ValueError:
        return list(map(progress_of, texts))
    if min(values) < 0.0 or max(values) > 100.0 or any(map(isnan, values)):
        return list(map(progress_of, texts))
    return values


def _statuses(texts: Sequence[str]) -> Sequence[ExportStatus]:
    found = list(map(_STATUS_BY_TEXT.get, texts))
    if None not in found:
        return found  # type: ignore[return-value]  # no None in it
    return [f or ExportStatus.parse(t) for t, f in zip(texts, found, strict=True)]

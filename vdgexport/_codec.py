"""Events and exports as JSON-safe dictionaries, and back: `event_to_dict`, `event_from_dict`.

Generic over the dataclass fields and their type hints: an event class that joins
`WatchEvent` round-trips with no edit here, as long as its fields are made of the types below.

==================  ===========================================================
Python              JSON
==================  ===========================================================
``str``, ``bool``   itself
``float``, ``int``  a number (a ``float`` field also reads an integer; NaN and
                    infinities, which JSON lacks, are written as ``null``)
``datetime``        ISO 8601 text in UTC, e.g. ``"2024-01-19T10:00:00+00:00"``
``timedelta``       float seconds (exact for durations under 285 years)
an ``Enum``         its value
``tuple[X, ...]``   a list
a dataclass         an object of its fields (an `Export` also carries ``progress``)
``X | None``        ``null`` or X
==================  ===========================================================
"""

# The documented error of a malformed dictionary is ValueError, also for a wrong JSON type.
# ruff: noqa: TRY004

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from ._events import WatchEvent
from ._models import Export

__all__ = ["event_from_dict", "event_to_dict", "export_from_dict", "export_to_dict"]

#: Read-only properties written beside the fields (derived: ignored when reading back).
_DERIVED: dict[type, tuple[str, ...]] = {Export: ("progress",)}
_EVENTS: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(WatchEvent)}
_HINTS: dict[type, dict[str, Any]] = {}


def event_to_dict(event: WatchEvent) -> dict[str, Any]:
    """``event`` as a JSON-safe dictionary: ``"type"`` (the class name) and every field.

    `event_from_dict` is its exact inverse.

    Example:
        ```python
        async with client.watch(42) as events:
            async for event in events:
                print(json.dumps(vdgexport.event_to_dict(event)))
        ```
        gives lines such as ``{"type": "DeviceProgress", "export_id": "42",
        "observed_at": "2024-01-19T10:00:01+00:00", "progress": 40.0, ..., "eta": 12.5}``.

    Raises:
        TypeError: ``event`` is not a `WatchEvent`.
        ValueError: a naive datetime in it (events always hold aware ones).
    """
    if _EVENTS.get(type(event).__name__) is not type(event):
        raise TypeError(f"not a WatchEvent: {type(event).__name__}")
    return {"type": type(event).__name__, **_encode_dataclass(event)}


def event_from_dict(data: Mapping[str, Any]) -> WatchEvent:
    """The event that `event_to_dict` made ``data`` of (after ``json.loads`` too).

    Raises:
        ValueError: not a dictionary, an unknown ``"type"``, a missing, unknown or
            malformed field; the message names it.

    Example:
        ```python
        event = vdgexport.event_from_dict(json.loads(line))
        if isinstance(event, vdgexport.TerminalEvent): ...
        ```
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"an event is a JSON object, not {type(data).__name__}")
    name = data.get("type")
    cls = _EVENTS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {name!r}")
    fields = {key: value for key, value in data.items() if key != "type"}
    event: WatchEvent = _decoder(cls)(fields, cls.__name__)
    return event


def export_to_dict(export: Export) -> dict[str, Any]:
    """``export`` as a JSON-safe dictionary: its fields, its ``devices`` and ``progress``.

    This is the form of the exports inside events; `export_from_dict` is its inverse.
    """
    if not isinstance(export, Export):
        raise TypeError(f"not an Export: {type(export).__name__}")
    return _encode_dataclass(export)


def export_from_dict(data: Mapping[str, Any]) -> Export:
    """The `Export` that `export_to_dict` made ``data`` of (``progress`` is recomputed).

    Raises:
        ValueError: a missing, unknown or malformed field; the message names it.
    """
    return _decoder(Export)(data, "export")  # type: ignore[no-any-return]


# -- encoding: by the value ------------------------------------------------------------------


def _encode(value: object) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN is not JSON
    if value is None or isinstance(value, (str, int)):
        return value  # bool is an int
    if isinstance(value, enum.Enum):
        return _encode(value.value)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: not a moment in UTC")
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (tuple, list)):
        return [_encode(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _encode_dataclass(value: Any) -> dict[str, Any]:
    data = {name: _encode(getattr(value, name)) for name in _fields(type(value))}
    for name in _DERIVED.get(type(value), ()):
        data[name] = _encode(getattr(value, name))
    return data


# -- decoding: by the type hint, through a decoder made once per hint ------------------------

Decoder = Callable[[Any, str], Any]
_DECODERS: dict[Any, Decoder] = {}


def _decoder(hint: Any) -> Decoder:
    """The function reading a JSON value of type ``hint`` (made on first use, then kept)."""
    try:
        return _DECODERS[hint]
    except KeyError:
        made = _DECODERS[hint] = _make_decoder(hint)
        return made


def _make_decoder(hint: Any) -> Decoder:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return _union_decoder(typing.get_args(hint))
    if origin is tuple:
        return _tuple_decoder(_decoder(typing.get_args(hint)[0]))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    reader = _READERS.get(hint)
    if reader is not None:
        return reader
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_decoder(hint)
    raise TypeError(f"no JSON form for {hint!r}")  # a new field type: add a reader


def _union_decoder(options: tuple[Any, ...]) -> Decoder:
    optional = type(None) in options
    decoders = [_decoder(option) for option in options if option is not type(None)]

    def decode(value: Any, where: str) -> Any:
        if value is None and optional:
            return None
        errors = []
        for decoder in decoders:
            try:
                return decoder(value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{where}: expected null, got {_kind(value)}")

    return decode


def _tuple_decoder(item: Decoder) -> Decoder:
    def decode(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {_kind(value)}")
        return tuple(item(each, f"{where}[{i}]") for i, each in enumerate(value))

    return decode


def _enum_decoder(cls: type[enum.Enum]) -> Decoder:
    def decode(value: Any, where: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a {cls.__name__}") from None

    return decode


def _dataclass_decoder(cls: type) -> Decoder:
    hints = _fields(cls)
    known = hints.keys() | set(_DERIVED.get(cls, ()))
    required = _required(cls)
    fields = [(name, "." + name, _decoder(hint)) for name, hint in hints.items()]

    def decode(data: Any, where: str) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {_kind(data)}")
        if not known.issuperset(data):
            unknown = set(data) - known
            raise ValueError(f"{where}: unknown field {sorted(map(str, unknown))[0]!r}")
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{where}: missing field {missing[0]!r}")
        values = {
            name: decoder(data[name], where + suffix)
            for name, suffix, decoder in fields
            if name in data
        }
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None

    return decode


def _fields(cls: type) -> dict[str, Any]:
    """The init fields of dataclass ``cls`` and their resolved type hints, in order."""
    try:
        return _HINTS[cls]
    except KeyError:
        hints = typing.get_type_hints(cls)
        found = _HINTS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
        return found


def _required(cls: type) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def _read_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected text, got {_kind(value)}")
    return value


def _read_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {_kind(value)}")
    return float(value)


def _read_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {_kind(value)}")
    return value


def _read_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {_kind(value)}")
    return value


def _read_datetime(value: Any, where: str) -> datetime:
    text = _read_str(value, where)
    if text.endswith(("Z", "z")):  # Python 3.10 reads only "+00:00"
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 datetime") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{where}: {value!r} has no UTC offset")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{where}: {value!r} is out of range in UTC") from None


def _read_timedelta(value: Any, where: str) -> timedelta:
    seconds = _read_float(value, where)
    if not math.isfinite(seconds):
        raise ValueError(f"{where}: {value!r} is not a duration")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{where}: {value!r} seconds is out of range") from None


_READERS: dict[Any, Callable[[Any, str], Any]] = {
    str: _read_str,
    float: _read_float,
    int: _read_int,
    bool: _read_bool,
    datetime: _read_datetime,
    timedelta: _read_timedelta,
}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__

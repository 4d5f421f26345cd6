"""JSON for the command line: events and models as plain, serialisable dictionaries."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime, timedelta
from typing import Any

from vdgexport import Export, ExportList, WatchEvent

__all__ = ["dumps", "event_json", "export_json", "export_list_json", "jsonable"]


def jsonable(value: object) -> Any:
    """``value`` made of JSON types only.

    Datetimes become ISO 8601 text, timedeltas seconds (``float``), enums their value,
    dataclasses dictionaries of their public fields (an `Export` also gets its mean
    ``progress``), tuples lists.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_json(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _dataclass_json(value: Any) -> dict[str, Any]:
    data = {
        f.name: jsonable(getattr(value, f.name))
        for f in dataclasses.fields(value)
        if not f.name.startswith("_")
    }
    if isinstance(value, Export):
        data["progress"] = value.progress
    return data


def event_json(event: WatchEvent) -> dict[str, Any]:
    """One event as a dictionary: ``"type"`` (the class name) and every field."""
    return {"type": type(event).__name__, **_dataclass_json(event)}


def export_json(export: Export) -> dict[str, Any]:
    """One export and its devices as a dictionary."""
    return _dataclass_json(export)


def export_list_json(exports: ExportList) -> dict[str, Any]:
    """A whole-list answer: ``{"count": N, "exports": [...]}``."""
    return {"count": exports.count, "exports": [export_json(e) for e in exports]}


def dumps(data: object) -> str:
    """Compact, one-line JSON (non-ASCII kept as is)."""
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))

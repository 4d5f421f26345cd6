"""event_to_dict / event_from_dict and export_to_dict / export_from_dict: exact JSON round trips."""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import datetime, timedelta, timezone
from typing import Any, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vdgexport
from vdgexport import (
    DeviceExport,
    DeviceProgress,
    Export,
    ExportCompleted,
    ExportStatus,
    ExportStatusChanged,
    ExportVanished,
    VanishReason,
    WatchEvent,
    event_from_dict,
    event_to_dict,
    export_from_dict,
    export_to_dict,
)
from vdgexport.testing import ManualClock, SenseSimulator

UTC = timezone.utc
ZONES = [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))]
EVENT_TYPES: tuple[type, ...] = typing.get_args(WatchEvent)


def strategy(hint: Any) -> st.SearchStrategy[Any]:
    """Values of the type ``hint`` as events hold them, built from the type hints alone, so
    that an event class joining `WatchEvent` is covered with no edit here."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return st.one_of(*(strategy(option) for option in typing.get_args(hint)))
    if origin is tuple:
        return st.lists(strategy(typing.get_args(hint)[0]), max_size=2).map(tuple)
    if hint is type(None):
        return st.none()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name: strategy(hints[f.name]) for f in dataclasses.fields(hint) if f.init}
        return st.builds(hint, **fields)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(hint)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=6),
        float: st.floats(-1e15, 1e15),
        int: st.integers(),
        bool: st.booleans(),
        datetime: st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(9000, 1, 1),
            timezones=st.sampled_from(ZONES),
        ),
        timedelta: st.timedeltas(min_value=-timedelta(days=36500), max_value=timedelta(days=36500)),
    }
    return simple[hint]


def through_json(data: dict[str, Any]) -> Any:
    """``data`` written as strict JSON (no NaN) and read back."""
    return json.loads(json.dumps(data, allow_nan=False))


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=40)  # whole events are big: the scalars get more examples below
@given(data=st.data())
def test_every_member_of_the_union_round_trips_exactly_through_json(
    cls: type, data: st.DataObject
) -> None:
    event = data.draw(strategy(cls))
    back = event_from_dict(through_json(event_to_dict(event)))
    assert type(back) is cls
    assert back == event


@given(st.tuples(strategy(datetime), strategy(timedelta), strategy(float | None)))
@settings(max_examples=300)
def test_datetimes_durations_and_numbers_round_trip_exactly(values: tuple[Any, ...]) -> None:
    moment, duration, number = values
    event = DeviceProgress(
        "1", moment, "s", "d", 0.0, number, ExportStatus.PENDING, None, 1.0, duration
    )
    back = event_from_dict(through_json(event_to_dict(event)))
    assert (back.observed_at, back.eta, back.previous_progress) == (moment, duration, number)
    assert back.observed_at.utcoffset() == timedelta(0)  # written and read in UTC


@settings(max_examples=40)
@given(strategy(Export))
def test_an_export_round_trips_exactly(export: Export) -> None:
    data = through_json(export_to_dict(export))
    assert data["progress"] == pytest.approx(export.progress)
    assert export_from_dict(data) == export


def device(progress: float, **changes: Any) -> DeviceExport:
    fields: dict[str, Any] = {
        "server_id": "{S}",
        "device_id": "{D}",
        "start_time": datetime(2024, 1, 19, 10, 0, tzinfo=UTC),
        "end_time": None,
        "progress": progress,
        "status": ExportStatus.SYNCING,
    }
    return DeviceExport(**{**fields, **changes})


EXPORT = Export("42", "D:/exports/1", ExportStatus.SYNCING, 8000.0, (device(40.0), device(60.0)))


def test_the_documented_form() -> None:
    berlin = timezone(timedelta(hours=1))
    event = DeviceProgress(
        "42",
        datetime(2024, 1, 19, 11, 0, 1, tzinfo=berlin),
        "{S}",
        "{D}",
        40.0,
        None,
        ExportStatus.SYNCING,
        8000.0,
        2.5,
        timedelta(seconds=24, microseconds=500000),
    )
    assert event_to_dict(event) == {
        "type": "DeviceProgress",
        "export_id": "42",
        "observed_at": "2024-01-19T10:00:01+00:00",
        "server_id": "{S}",
        "device_id": "{D}",
        "progress": 40.0,
        "previous_progress": None,
        "status": "SYNCING",
        "bandwidth_kbps": 8000.0,
        "rate": 2.5,
        "eta": 24.5,
    }


def test_a_nested_export_has_its_devices_and_progress() -> None:
    event = ExportStatusChanged(
        "42", datetime(2024, 1, 19, tzinfo=UTC), ExportStatus.SYNCING, None, EXPORT
    )
    data = event_to_dict(event)
    assert data["previous_status"] is None
    export = data["export"]
    assert export["progress"] == 50.0
    assert [d["progress"] for d in export["devices"]] == [40.0, 60.0]
    assert export["devices"][0]["start_time"] == "2024-01-19T10:00:00+00:00"
    assert export["devices"][0]["end_time"] is None
    assert export == export_to_dict(EXPORT)
    vanished = ExportVanished("42", datetime(2024, 1, 19, tzinfo=UTC), VanishReason.REPLACED, None)
    assert event_to_dict(vanished)["reason"] == "replaced"


def test_json_dumps_of_the_dictionary_works_and_nan_becomes_null() -> None:
    odd = dataclasses.replace(EXPORT, bandwidth_kbps=float("nan"))
    event = ExportCompleted("42", datetime(2024, 1, 19, tzinfo=UTC), odd)
    data = through_json(event_to_dict(event))
    assert data["export"]["bandwidth_kbps"] is None


def test_a_z_suffix_and_an_integer_for_a_float_are_read() -> None:
    data = event_to_dict(ExportCompleted("42", datetime(2024, 1, 19, tzinfo=UTC), EXPORT))
    data["observed_at"] = "2024-01-19T00:00:00Z"
    data["export"]["bandwidth_kbps"] = 8000
    assert event_from_dict(data) == ExportCompleted("42", datetime(2024, 1, 19, tzinfo=UTC), EXPORT)


def good() -> dict[str, Any]:
    return event_to_dict(ExportCompleted("42", datetime(2024, 1, 19, tzinfo=UTC), EXPORT))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.update(type="ExportExploded"), "ExportExploded"),
        (lambda d: d.pop("type"), "None"),
        (lambda d: d.update(type=3), "3"),
        (lambda d: d.pop("observed_at"), "observed_at"),
        (lambda d: d.update(observed_at="yesterday"), "observed_at"),
        (lambda d: d.update(observed_at="2024-01-19T00:00:00"), "no UTC offset"),
        (lambda d: d.update(observed_at=17), "observed_at"),
        (lambda d: d.update(export_id=42), "export_id"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(export=None), "export"),
        (lambda d: d.update(export=[]), "export"),
        (lambda d: d["export"].update(status="FINISHED"), "FINISHED"),
        (lambda d: d["export"].update(devices={}), "devices"),
        (lambda d: d["export"]["devices"][1].update(progress="40"), "devices[1].progress"),
        (lambda d: d["export"]["devices"][0].update(progress=True), "progress"),
        (lambda d: d["export"]["devices"][0].pop("server_id"), "server_id"),
    ],
)
def test_a_bad_dictionary_is_a_value_error_naming_the_field(change: Any, named: str) -> None:
    data = good()
    change(data)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        event_from_dict(data)


@pytest.mark.parametrize("data", [None, [], "ExportCompleted", 42])
def test_not_an_object_is_a_value_error(data: Any) -> None:
    with pytest.raises(ValueError, match="event"):
        event_from_dict(data)


def test_a_bad_duration_is_a_value_error() -> None:
    cls = next((c for c in EVENT_TYPES if c.__name__ == "ExportStalled"), None)
    assert cls is not None
    data = event_to_dict(cls("42", datetime(2024, 1, 19, tzinfo=UTC), timedelta(seconds=5), EXPORT))
    assert data["stalled_for"] == 5.0
    for bad in (1e300, "5 s", None):
        with pytest.raises(ValueError, match="stalled_for"):
            event_from_dict({**data, "stalled_for": bad})


def test_what_is_not_an_event_or_an_export_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="WatchEvent"):
        event_to_dict(EXPORT)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Export"):
        export_to_dict(device(1.0))  # type: ignore[arg-type]


def test_a_naive_datetime_is_refused_when_writing() -> None:
    event = ExportCompleted("42", datetime(2024, 1, 19), EXPORT)
    with pytest.raises(ValueError, match="naive"):
        event_to_dict(event)


async def test_the_events_of_a_real_watch_round_trip(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=[10, 20], pending=2)
    seen = []
    async with client.watch(eid) as watch:
        async for event in watch:
            seen.append(event)
            assert event_from_dict(through_json(event_to_dict(event))) == event
            clock.advance(4)
    assert isinstance(seen[-1], ExportCompleted)
    assert {type(e) for e in seen} >= {ExportStatusChanged, DeviceProgress, ExportCompleted}

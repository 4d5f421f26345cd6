"""Bytes to models: tolerant of what the server may do, strict about what is unsafe."""

from __future__ import annotations

import dataclasses
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from vdgexport import (
    ApiError,
    DeviceExport,
    Export,
    ExportNotFoundError,
    ExportStatus,
    ProtocolError,
)
from vdgexport._parse import parse_export, parse_export_list

from .conftest import HOSTILE_XML

UTC = timezone.utc


def device(progress: str = "45", status: str = "SYNCING", extra: str = "") -> str:
    return (
        "<device><serverid>{S-1}</serverid><deviceid>{D-1}</deviceid>"
        "<starttime>2024-01-19 10:00:00.250</starttime><endtime>2024-01-19 10:05:00</endtime>"
        f"<progress>{progress}</progress><status>{status}</status>{extra}</device>"
    )


def body(*exports: str, count: str | None = None, code: str = "0") -> bytes:
    n = str(len(exports)) if count is None else count
    inner = "".join(exports)
    return (
        f'<?xml version="1.0"?><result errorcode="{code}"><exports count="{n}">'
        f"{inner}</exports></result>"
    ).encode()


def export(eid: str = "7", status: str = "SYNCING", devices: str | None = None) -> str:
    devs = device() if devices is None else devices
    return (
        f"<export><exportid>{eid}</exportid><path>D:\\x</path><status>{status}</status>"
        f"<bandwidth>8000</bandwidth><devices>{devs}</devices></export>"
    )


def test_documented_export_parses_to_typed_models() -> None:
    exports = parse_export_list(body(export()))
    assert exports.count == 1
    assert len(exports) == 1
    [e] = exports
    assert e == exports.get(7) == exports.get("7")
    assert (e.export_id, e.path, e.status, e.bandwidth_kbps) == (
        "7",
        "D:\\x",
        ExportStatus.SYNCING,
        8000.0,
    )
    [d] = e.devices
    assert d.server_id == "{S-1}"
    assert d.device_id == "{D-1}"
    assert d.start_time == datetime(2024, 1, 19, 10, 0, 0, 250000, tzinfo=UTC)
    assert d.end_time == datetime(2024, 1, 19, 10, 5, tzinfo=UTC)
    assert d.progress == 45.0
    assert e.progress == 45.0


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("SYNCING", ExportStatus.SYNCING),
        (" completed\n", ExportStatus.COMPLETED),
        ("Pending", ExportStatus.PENDING),
        ("removed", ExportStatus.REMOVED),
        ("EXPLODED", ExportStatus.UNKNOWN),
        ("", ExportStatus.UNKNOWN),
    ],
)
def test_status_any_case_and_whitespace(text: str, status: ExportStatus) -> None:
    [e] = parse_export_list(body(export(status=text)))
    assert e.status is status
    assert e.raw_status == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("45", 45.0),
        ("45.5", 45.5),
        ("45%", 45.0),
        (" 45.5 % ", 45.5),
        ("", 0.0),
        ("n/a", 0.0),
        ("250", 100.0),
        ("-3", 0.0),
    ],
)
def test_progress_forms(text: str, value: float) -> None:
    [e] = parse_export_list(body(export(devices=device(progress=text))))
    assert e.devices[0].progress == value


def test_children_in_any_order_unknown_tags_and_attributes_ignored() -> None:
    xml = (
        b'<result errorcode="0" extra="1"><new/><exports count="1" page="1"><export kind="x">'
        b"<devices><device><progress>10</progress><future>1</future><status>syncing</status>"
        b"<deviceid>d</deviceid><serverid>s</serverid></device></devices>"
        b"<Status>PENDING</Status><EXPORTID>9</EXPORTID><unknown><deep/></unknown>"
        b"</export></exports></result>"
    )
    [e] = parse_export_list(xml)
    assert e.export_id == "9"
    assert e.status is ExportStatus.PENDING
    assert e.path == ""
    assert e.bandwidth_kbps is None
    assert e.devices[0].key == ("s", "d")
    assert e.devices[0].start_time is None


def test_empty_list_and_count_disagreeing_with_children() -> None:
    assert len(parse_export_list(body())) == 0
    two = parse_export_list(body(export("1"), export("2"), count="5"))
    assert (len(two), two.count) == (2, 5)
    bad = parse_export_list(body(export("1"), count="many"))
    assert (len(bad), bad.count) == (1, None)


def test_unparseable_timestamp_is_none_with_raw_text_kept() -> None:
    xml = body(export(devices=device().replace("2024-01-19 10:05:00", "yesterday")))
    [e] = parse_export_list(xml)
    assert e.devices[0].end_time is None
    assert e.devices[0].raw_end_time == "yesterday"


def test_negative_errorcode_is_a_typed_api_error() -> None:
    with pytest.raises(ExportNotFoundError) as nf:
        parse_export_list(
            b'<result errorcode="-57"><description>Invalid exportid</description></result>'
        )
    assert (nf.value.code, nf.value.description) == (-57, "Invalid exportid")
    with pytest.raises(ApiError) as other:
        parse_export_list(b'<result errorcode="-18"/>')
    assert other.value.code == -18
    assert "general error" in str(other.value)
    with pytest.raises(ApiError, match="-999"):
        parse_export_list(b'<result errorcode="-999"><description>new</description></result>')


def test_parse_export_by_id() -> None:
    data = body(export("a&amp;b"))
    assert parse_export(data, "a&b").export_id == "a&b"
    with pytest.raises(ExportNotFoundError):
        parse_export(data, "other")


def test_fast_constructor_builds_the_same_models_as_init() -> None:
    [e] = parse_export_list(body(export()))
    d = e.devices[0]
    rebuilt = DeviceExport(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)})
    assert rebuilt == d
    assert hash(rebuilt) == hash(d)
    assert Export(**{f.name: getattr(e, f.name) for f in dataclasses.fields(e)}) == e
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.progress = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'<result errorcode="0"><exports count="1"><export>', "malformed"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML"),
        (b"<!DOCTYPE html><html><body>502</body></html>", "HTML"),
        (b"<apiinfo><version>1</version></apiinfo>", "<apiinfo>"),
        (b"not xml at all", "malformed"),
        (b'<result errorcode="zero"/>', "not a number"),
        (b'<result errorcode="0">&undefined;</result>', "malformed"),
        (b"\xff\xfe<\x00r\x00", "encoding"),
        (b'<?xml version="1.0" encoding="UTF-16"?><result/>', "encoding"),
        (b'<result errorcode="0"><path>\xff\xfe</path></result>', "malformed"),
    ],
)
def test_broken_or_foreign_bodies_are_protocol_errors(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        parse_export_list(data)
    assert not info.value.unsafe


HOSTILE = sorted(p for p in HOSTILE_XML.glob("*.xml")) if HOSTILE_XML.is_dir() else []


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_documents_refused_quickly_without_io(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser tried to open a file or a connection")

    monkeypatch.setattr(socket, "create_connection", no_io)
    monkeypatch.setattr(socket.socket, "connect", no_io)
    monkeypatch.setattr("builtins.open", no_io)
    data = path.read_bytes()
    started = time.perf_counter()
    with pytest.raises(ProtocolError) as info:
        parse_export_list(data)
    assert time.perf_counter() - started < 1.0
    assert info.value.unsafe == (b"<!DOCTYPE" in data)


def test_hostile_set_is_present() -> None:
    if not HOSTILE:
        pytest.skip(f"no hostile XML samples at {HOSTILE_XML}")
    assert len(HOSTILE) >= 10


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE result [<!ENTITY a "aaaa">]><result errorcode="0">&a;</result>',
        b'<!DOCTYPE result SYSTEM "http://127.0.0.1:9/evil.dtd"><result errorcode="0"/>',
        b'<!DOCTYPE result [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><result/>',
        b'<?xml version="1.0"?>\n<!DOCTYPE html [<!ENTITY x "y">]><html/>',
        b'\xef\xbb\xbf<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><result>&x;</result>',
    ],
)
def test_dtd_and_entities_refused_as_unsafe(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="unsafe") as info:
        parse_export_list(data)
    assert info.value.unsafe


def test_a_timestamp_out_of_range_in_utc_is_unreadable_not_a_crash() -> None:
    xml = body(export(devices=device().replace("2024-01-19 10:05:00", "9999-12-31 23:59:59-01:00")))
    [e] = parse_export_list(xml)
    assert e.devices[0].end_time is None
    assert e.devices[0].raw_end_time == "9999-12-31 23:59:59-01:00"

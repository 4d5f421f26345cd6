"""Bytes to models: tolerant of what the server may do, strict about what is unsafe."""

from __future__ import annotations

import dataclasses
import gc
import socket
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from vdgexport import (
    ApiError,
    DeviceExport,
    Export,
    ExportNotFoundError,
    ExportStatus,
    ProtocolError,
    _parse,
)
from vdgexport._incremental import ListParser
from vdgexport._parse import parse_document, parse_export, parse_export_list

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


# -- encodings (issue 10, items 4 and 9) ---------------------------------------------------

UTF8_SPELLINGS = ["utf-8", "UTF-8", "utf8", "UTF8", "utf_8", "U8", "utf", "cp65001", "utf8_ucs4"]


def declared(encoding: str, *, padding: int = 0, text: str = "D:\\é 日本") -> bytes:
    decl = f'<?xml version="1.0"{" " * padding} encoding="{encoding}"?>'
    return decl.encode() + body(export().replace("D:\\x", text))[len('<?xml version="1.0"?>') :]


@pytest.mark.parametrize("spelling", UTF8_SPELLINGS)
@pytest.mark.parametrize("parse", [parse_export_list, lambda d: ListParser().parse(d)])
def test_every_spelling_of_utf8_reads_as_utf8(spelling: str, parse: Any) -> None:
    [e] = parse(declared(spelling))
    assert e.path == "D:\\é 日本"
    assert parse_export(declared(spelling), "7").path == "D:\\é 日本"


@pytest.mark.parametrize(
    ("encoding", "match"),
    [
        ("shift_jis", "unsupported encoding"),
        ("utf-7", "unsupported encoding"),
        ("euc-jp", "unsupported encoding"),
        ("idna", "unsupported encoding"),
        ("no-such-codec", "unknown encoding"),
        ("utf-16", "unsupported encoding"),
    ],
)
@pytest.mark.parametrize("padding", [0, 300, 100_000])
def test_a_foreign_encoding_anywhere_in_the_declaration_is_a_protocol_error(
    encoding: str, match: str, padding: int
) -> None:
    """Beyond the first 200 bytes these gave ValueError, LookupError or UnicodeError."""
    data = declared(encoding, padding=padding, text="D:\\x")
    for parse in (parse_export_list, ListParser().parse, parse_document):
        with pytest.raises(ProtocolError, match=match):
            parse(data)
    with pytest.raises(ProtocolError, match=match):
        parse_export(data, "7")


@pytest.mark.parametrize(
    "data",
    [
        declared("latin-1", text="D:\\\xe9").replace("é".encode(), b"\xe9"),
        b"\xef\xbb\xbf" + declared("utf8"),
        declared("windows-1252", text="D:\\x").replace(b"D:\\x", b"D:\\\x80"),
    ],
    ids=["latin-1", "bom-utf8", "cp1252"],
)
def test_ascii_compatible_encodings_are_read_as_declared(data: bytes) -> None:
    assert parse_export_list(data)[0].path == parse_document(data).findtext(".//path")
    assert parse_export_list(data)[0].path in {"D:\\é", "D:\\é 日本", "D:\\€"}


def test_a_utf8_byte_order_mark_with_another_declared_encoding_is_refused() -> None:
    with pytest.raises(ProtocolError, match="byte order mark"):
        parse_export_list(b"\xef\xbb\xbf" + declared("latin-1", text="D:\\x"))


# -- defusedxml for the small answers ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE r [<!ENTITY a "b">]><result errorcode="0">&a;</result>',
        b'<!DOCTYPE result SYSTEM "http://127.0.0.1:9/x.dtd"><result errorcode="0"/>',
        b"<!DOCTYPE result><result/>",
    ],
)
def test_small_answers_are_refused_by_defusedxml_itself(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the byte check switched off, defusedxml (forbid_dtd) still refuses a DTD."""
    monkeypatch.setattr(_parse, "refuse_unsafe", lambda data: "utf-8")
    with pytest.raises(ProtocolError, match="unsafe") as info:
        parse_document(data)
    assert info.value.unsafe
    with pytest.raises(ProtocolError, match="unsafe"):
        parse_export(data, "1")


# -- caches (issue 10, item 5) -------------------------------------------------------------


def test_long_texts_do_not_stay_in_the_caches_after_their_answers() -> None:
    """150 answers with a unique 4 MiB text each left 682 MiB behind; now nothing stays."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(12):
            long = f"{n:04d}" * (256 * 1024)  # 1 MiB, unique per answer
            dev = device().replace("{S-1}", long).replace("2024-01-19 10:00:00.250", long)
            parse_export_list(body(export(devices=dev)))
            ListParser().parse(body(export(devices=dev)))
        del long, dev
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert left < 2 * 1024 * 1024, f"{left:,} bytes stayed after the answers were dropped"


def test_short_texts_are_still_shared_between_answers() -> None:
    one, two = parse_export_list(body(export())), parse_export_list(body(export()))
    assert one[0].devices[0].server_id is two[0].devices[0].server_id
    assert one[0].devices[0].raw_start_time is two[0].devices[0].raw_start_time


def test_a_tag_with_absurdly_many_attributes_is_refused_before_expat_sees_it() -> None:
    many = " ".join(f'a{i}="v"' for i in range(1001))
    data = body(export().replace("<export>", f"<export {many}>"))
    for parse in (parse_export_list, ListParser().parse, parse_document):
        with pytest.raises(ProtocolError, match="attributes"):
            parse(data)
    few = " ".join(f'a{i}="v"' for i in range(1000))
    assert len(parse_export_list(body(export().replace("<export>", f"<export {few}>")))) == 1

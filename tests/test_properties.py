"""Properties of the parser (hypothesis): whatever the bytes, only typed errors; whatever the
models, serialised XML parses back to equal models."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vdgexport
from vdgexport import DeviceExport, Export, ExportList, ExportStatus
from vdgexport._parse import parse_export_list

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that XML 1.0 can carry as it is: no control characters (``\r`` would become ``\n``),
# surrogates or non-characters; the XML-special ones are drawn often.
_chars = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co", "Zl", "Zp")
) | st.sampled_from("&<>\"'#% ;")
text = st.text(_chars, max_size=12)
ids = text.map(str.strip)  # the parser strips ids, paths and UIDs
statuses = st.sampled_from(["SYNCING", "PENDING", "COMPLETED", "REMOVED"])
raw_status = st.one_of(
    st.tuples(statuses, st.sampled_from(["", " ", "\n"]), st.booleans()).map(
        lambda t: t[1] + (t[0].lower() if t[2] else t[0]) + t[1]
    ),
    text,
)
stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def _stamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@st.composite
def devices(draw: st.DrawFn) -> DeviceExport:
    start, end = draw(st.none() | stamps), draw(st.none() | stamps)
    status = draw(raw_status)
    return DeviceExport(
        server_id=draw(ids),
        device_id=draw(ids),
        start_time=None if start is None else start.replace(tzinfo=timezone.utc),
        end_time=None if end is None else end.replace(tzinfo=timezone.utc),
        progress=draw(st.integers(0, 1000)) / 10,
        status=ExportStatus.parse(status),
        raw_status=status,
        raw_start_time=_stamp(start),
        raw_end_time=_stamp(end),
    )


@st.composite
def exports(draw: st.DrawFn) -> Export:
    status = draw(raw_status)
    return Export(
        export_id=draw(ids),
        path=draw(ids),
        status=ExportStatus.parse(status),
        bandwidth_kbps=draw(st.none() | st.integers(0, 10**7).map(lambda n: n / 10)),
        devices=tuple(draw(st.lists(devices(), max_size=3))),
        raw_status=status,
    )


def _element(tag: str, value: str, upper: bool) -> str:
    name = tag.upper() if upper else tag
    return f"<{name}>{escape(value)}</{name}>"


def _progress(value: float, style: int) -> str:
    text = f"{value:g}"
    return [text, text + "%", f" {text} % "][style]


@st.composite
def documents(draw: st.DrawFn) -> tuple[bytes, ExportList]:
    """A well-formed answer and the models it must parse to (children in any order, tags
    in any case, unknown tags and attributes sprinkled in)."""
    model = ExportList(tuple(draw(st.lists(exports(), max_size=3))), None)
    parts = ['<result errorcode="0" future="1">']
    count = draw(st.booleans())
    parts.append(f'<exports count="{len(model)}">' if count else "<exports>")
    for export in model:
        children = [
            _element("exportid", export.export_id, draw(st.booleans())),
            _element("path", export.path, draw(st.booleans())),
            _element("status", export.raw_status, draw(st.booleans())),
            "<devices>" + "".join(draw(_device_xml(d)) for d in export.devices) + "</devices>",
            "<newtag a='1'>" + escape(draw(text)) + "</newtag>",
        ]
        if export.bandwidth_kbps is not None:
            children.append(_element("bandwidth", str(export.bandwidth_kbps), False))
        parts.append("<export>" + "".join(draw(st.permutations(children))) + "</export>")
    parts.append("</exports></result>")
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    expected = ExportList(model.exports, len(model) if count else None)
    return (declaration + "".join(parts)).encode(), expected


@st.composite
def _device_xml(draw: st.DrawFn, device: DeviceExport) -> str:
    children = [
        _element("serverid", device.server_id, draw(st.booleans())),
        _element("deviceid", device.device_id, False),
        _element("starttime", device.raw_start_time, False),
        _element("endtime", device.raw_end_time, draw(st.booleans())),
        f"<progress>{_progress(device.progress, draw(st.integers(0, 2)))}</progress>",
        _element("status", device.raw_status, False),
    ]
    return "<device>" + "".join(draw(st.permutations(children))) + "</device>"


def parses_or_typed_error(data: bytes) -> None:
    with contextlib.suppress(vdgexport.VdgError):
        parse_export_list(data)


@SETTINGS
@given(documents())
def test_models_round_trip_through_xml(doc: tuple[bytes, ExportList]) -> None:
    data, expected = doc
    assert parse_export_list(data) == expected


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    parses_or_typed_error(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(documents())[0])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(
                st.binary(max_size=8)
                | st.sampled_from([b"<", b">", b"&", b"&amp;", b"<!DOCTYPE x>", b"\xff", b"]]>"])
            )
        elif data:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_documents_give_only_typed_errors(data: bytes) -> None:
    parses_or_typed_error(data)

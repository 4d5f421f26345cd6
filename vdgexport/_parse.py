"""Response bytes to typed models, safely and at the speed of the C parser.

Safety comes first and costs nothing per element: before any tree is built the body is
checked for what makes XML dangerous — a document type declaration (which is where entity
declarations, billion laughs, quadratic blow-up and external entities live) and any
encoding in which such a check could be hidden. A document without a DTD cannot declare
entities, and the standard library's C parser then refuses any entity it does not know.
These are the same protections `defusedxml` applies (no DTD, no entity expansion, no
external references), but checked with one byte search instead of Python callbacks on the
pure-Python parser, so the tree is built by expat and the C ``TreeBuilder`` alone.
"""

from __future__ import annotations

import gc
import math
import re
from codecs import BOM_UTF8
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any
from xml.etree.ElementTree import Element, ParseError, fromstring

from ._exceptions import ProtocolError, api_error
from ._models import _STATUS_BY_TEXT, DeviceExport, Export, ExportList, ExportStatus

__all__ = [
    "check_envelope",
    "collector_paused",
    "export_from",
    "exports_from",
    "local",
    "parse_document",
    "parse_export",
    "parse_export_list",
    "parse_tree",
    "read_timestamp",
    "refuse_unsafe",
]

_UTC = timezone.utc
_DECLARATION = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_SAFE_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf8",
        "us-ascii",
        "ascii",
        "iso-8859-1",
        "latin-1",
        "latin1",
        "windows-1252",
        "cp1252",
    }
)
_HTML = re.compile(rb"^\s*(?:<!doctype\s+html|<html)", re.IGNORECASE)


def refuse_unsafe(data: bytes) -> None:
    """Raise `ProtocolError` unless ``data`` is XML that cannot declare entities."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f")) or b"\x00" in data[:4]:
        raise ProtocolError("unsupported encoding: only UTF-8 and ASCII-compatible XML")
    head = data[:200]
    declared = _DECLARATION.search(head)
    if declared is not None and declared.group(1).lower().decode() not in _SAFE_ENCODINGS:
        raise ProtocolError(f"unsupported encoding {declared.group(1).decode()!r}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        if _HTML.match(data.removeprefix(BOM_UTF8)) and b"<!ENTITY" not in data:
            raise ProtocolError("an HTML page, not XML (a proxy's error page?)")
        raise ProtocolError(
            "unsafe XML refused: a document type declaration (DTD) or an entity", unsafe=True
        )


def parse_document(data: bytes) -> Element:
    """The root element of a safe, well-formed body, whatever its tag.

    Raises:
        ProtocolError: empty, unsafe (DTD, entities, foreign encoding), HTML or malformed.
    """
    if not data.strip():
        raise ProtocolError("empty body")
    refuse_unsafe(data)
    try:
        return fromstring(data)
    except ParseError as exc:
        if _HTML.match(data.removeprefix(BOM_UTF8)):
            raise ProtocolError("an HTML page, not XML (a proxy's error page?)") from None
        raise ProtocolError(f"malformed XML: {exc}") from None


def parse_tree(data: bytes) -> Element:
    """Parse ``data`` into the ``<result>`` element, refusing anything unsafe or foreign."""
    root = parse_document(data)
    tag = local(root.tag)
    if tag != "result":
        what = "an HTML page" if tag == "html" else f"root element <{tag}>"
        raise ProtocolError(f"expected <result>, got {what}")
    return root


def check_envelope(root: Element) -> None:
    """Raise the typed `ApiError` if ``<result errorcode>`` is negative."""
    raw = root.get("errorcode")
    if raw is None:
        raw = next((v for k, v in root.attrib.items() if k.lower() == "errorcode"), None)
    if raw is None:
        return
    try:
        code = int(raw.strip())
    except ValueError:
        raise ProtocolError(f"errorcode is not a number: {raw[:40]!r}") from None
    if code < 0:
        description = _text(_child(root, "description")) or ""
        raise api_error(code, description)


def parse_export_list(data: bytes) -> ExportList:
    """Parse a whole-list answer into an `ExportList`.

    Raises:
        ProtocolError: the body is not safe, well-formed ``<result>`` XML.
        ApiError: the server answered with a negative errorcode.

    Example:
        >>> body = b'<result errorcode="0"><exports count="0"/></result>'
        >>> len(parse_export_list(body))
        0
    """
    with collector_paused():
        root = parse_tree(data)
        check_envelope(root)
        return exports_from(root)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a body becomes a tree and models.

    Parsing allocates a few objects per byte and none of them can form a cycle; without
    this, generation-0 collections keep walking the growing tree (about a third of the
    time of a large parse). Re-enabled at once, even on error; never enabled if it was not.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_export(data: bytes, export_id: str) -> Export:
    """Parse a per-id answer into the `Export` named ``export_id``.

    An answer that lists no such export raises `ExportNotFoundError`, like -57.
    """
    found = parse_export_list(data)
    export = found.get(export_id)
    if export is None:
        if len(found) == 1 and found.count == 1 and not found[0].export_id:
            return found[0]
        raise api_error(-57, f"export {export_id!r} is not in the answer")
    return export


def exports_from(root: Element) -> ExportList:
    """The `ExportList` under a ``<result>`` element."""
    container = _child(root, "exports")
    if container is None:
        return ExportList((), None)
    count = _int_or_none(container.get("count"))
    return ExportList(tuple([export_from(e) for e in _children(container, "export")]), count)


def export_from(elem: Element) -> Export:
    """One `Export` from its ``<export>`` element (unknown children are ignored)."""
    export_id = path = raw_status = ""
    bandwidth: float | None = None
    devices: tuple[DeviceExport, ...] = ()
    for child in elem:
        tag = child.tag if child.tag in _EXPORT_TAGS else local(child.tag)
        if tag == "devices":
            devices = tuple(
                [device_from(d) for d in child if d.tag == "device" or local(d.tag) == "device"]
            )
        elif tag == "exportid":
            export_id = (child.text or "").strip()
        elif tag == "path":
            path = (child.text or "").strip()
        elif tag == "status":
            raw_status = child.text or ""
        elif tag == "bandwidth":
            bandwidth = _number(child.text)
    status = _STATUS_BY_TEXT.get(raw_status) or ExportStatus.parse(raw_status)
    return _new_export(
        export_id, path, status, bandwidth, devices, _STRINGS.get(raw_status, raw_status)
    )


_EXPORT_TAGS = frozenset({"exportid", "path", "status", "bandwidth", "devices"})
_DEVICE_SLOTS = {
    tag: slot
    for slot, tag in enumerate(
        ("serverid", "deviceid", "starttime", "endtime", "progress", "status")
    )
}


def device_from(elem: Element) -> DeviceExport:
    """One `DeviceExport` from its ``<device>`` element (unknown children are ignored)."""
    texts: list[str | None] = [None] * 6
    slot_of = _DEVICE_SLOTS.get
    for child in elem:
        slot = slot_of(child.tag)
        if slot is None:
            slot = slot_of(local(child.tag))
            if slot is None:
                continue
        texts[slot] = child.text
    raw_server, raw_device, raw_start, raw_end, raw_progress, raw_status = texts
    server_id = raw_server.strip() if raw_server else ""
    device_id = raw_device.strip() if raw_device else ""
    start = raw_start.strip() if raw_start else ""
    end = raw_end.strip() if raw_end else ""
    raw_status = raw_status or ""
    try:
        progress: float | None = float(raw_progress)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        progress = _number(raw_progress)
    if progress is None or not 0.0 <= progress <= 100.0:
        progress = 0.0 if progress is None or progress < 0.0 or math.isnan(progress) else 100.0
    status = _STATUS_BY_TEXT.get(raw_status) or ExportStatus.parse(raw_status)
    start, start_time = _timestamp(start)
    end, end_time = _timestamp(end)
    return _new_device(
        _intern(server_id),
        device_id,
        start_time,
        end_time,
        progress,
        status,
        _STRINGS.get(raw_status, raw_status),
        start,
        end,
    )


# The generated ``__init__`` of a frozen dataclass pays a global lookup and a call of
# ``object.__setattr__`` per field. The parser builds tens of thousands of models per
# answer, so it sets the slots through their descriptors instead: the same objects, equal
# to what ``__init__`` makes (tests/test_parse.py checks), about twice as fast.
_D = [getattr(DeviceExport, f.name).__set__ for f in fields(DeviceExport)]
_E = [getattr(Export, f.name).__set__ for f in fields(Export)]


def _new_device(
    a: str,
    b: str,
    c: datetime | None,
    d: datetime | None,
    e: float,
    f: ExportStatus,
    g: str,
    h: str,
    i: str,
    _new: Any = object.__new__,
    _cls: type = DeviceExport,
    _a: Any = _D[0],
    _b: Any = _D[1],
    _c: Any = _D[2],
    _d: Any = _D[3],
    _e: Any = _D[4],
    _f: Any = _D[5],
    _g: Any = _D[6],
    _h: Any = _D[7],
    _i: Any = _D[8],
) -> DeviceExport:
    obj = _new(_cls)
    _a(obj, a)
    _b(obj, b)
    _c(obj, c)
    _d(obj, d)
    _e(obj, e)
    _f(obj, f)
    _g(obj, g)
    _h(obj, h)
    _i(obj, i)
    return obj  # type: ignore[no-any-return]


def _new_export(
    a: str,
    b: str,
    c: ExportStatus,
    d: float | None,
    e: tuple[DeviceExport, ...],
    f: str,
    _new: Any = object.__new__,
    _cls: type = Export,
    _a: Any = _E[0],
    _b: Any = _E[1],
    _c: Any = _E[2],
    _d: Any = _E[3],
    _e: Any = _E[4],
    _f: Any = _E[5],
) -> Export:
    obj = _new(_cls)
    _a(obj, a)
    _b(obj, b)
    _c(obj, c)
    _d(obj, d)
    _e(obj, e)
    _f(obj, f)
    return obj  # type: ignore[no-any-return]


def local(tag: str) -> str:
    """A tag without namespace, lower-cased: tags are matched case-insensitively."""
    return tag.rpartition("}")[2].lower()


def _children(elem: Element, tag: str) -> Iterable[Element]:
    return (c for c in elem if c.tag == tag or local(c.tag) == tag)


def _child(elem: Element, tag: str) -> Element | None:
    return next(iter(_children(elem, tag)), None)


def _text(elem: Element | None) -> str | None:
    return None if elem is None else (elem.text or "").strip()


def _int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


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


# Texts that recur across exports and polls (timestamps, server UIDs) are kept once: the
# models of thousands of watched exports then share them (memory per watch), and a
# timestamp is converted once, not at every poll. Both caches are bounded.
_TIMESTAMPS: dict[str, tuple[str, datetime | None]] = {}
_STRINGS: dict[str, str] = {s.value: s.value for s in ExportStatus}
_CACHE_LIMIT = 8192  # entries: about 2 MB at most


def _intern(text: str) -> str:
    found = _STRINGS.get(text)
    if found is None:
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
    try:
        return _TIMESTAMPS[text]
    except KeyError:
        pass
    value: datetime | None
    try:  # the documented form, read as UTC in one call (the offset gives timezone.utc)
        value = datetime.fromisoformat(text + "+00:00")
    except ValueError:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            value = _timestamp_slow(text)
        if value is not None:
            try:
                value = (
                    value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
                )
            except (OverflowError, ValueError):  # e.g. 9999-12-31 23:59:59-01:00
                value = None
    if len(_TIMESTAMPS) >= _CACHE_LIMIT:
        _TIMESTAMPS.clear()
    found = _TIMESTAMPS[text] = (text, value)
    return found


def _timestamp_slow(text: str) -> datetime | None:
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None

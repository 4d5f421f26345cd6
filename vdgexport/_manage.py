"""The calls around a watch: ``exportVideo`` bodies and answers, and ``/info``.

The answers of ``exportVideo`` and ``/info`` are not documented publicly, so they are read
tolerantly: any root element, tags and attributes in any case, the value wherever it is.
Bodies are parsed by `_parse.parse_document`, the same safe parse as every answer (no DTD,
no entities, ASCII-compatible encodings only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from ._exceptions import ProtocolError, VdgError
from ._models import DeviceSpan, ServerInfo
from ._parse import check_envelope, local, parse_document, read_timestamp

__all__ = [
    "MIN_EXPORT_VERSION",
    "check_answer",
    "export_body",
    "find_export_id",
    "find_text",
    "parse_info",
    "remove_body",
    "require_exports",
    "shown",
]

#: The first Sense version with ``exportVideo``.
MIN_EXPORT_VERSION = (2, 7, 3)
_SHOWN_BYTES = 300
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_VERSION = re.compile(r"\d+(?:\.\d+)*")
_MAX_VERSION_DIGITS = 9


def shown(body: bytes) -> str:
    """A short, printable view of a body for an error message (a truncated ``repr``)."""
    if len(body) <= _SHOWN_BYTES:
        return repr(body)
    return f"{body[:_SHOWN_BYTES]!r}... ({len(body)} bytes)"


def find_text(root: Element, tag: str) -> str | None:
    """The stripped text of the first non-empty ``<tag>`` anywhere under ``root``, any case."""
    for elem in root.iter():
        if isinstance(elem.tag, str) and local(elem.tag) == tag:
            text = (elem.text or "").strip()
            if text:
                return text
    return None


def check_answer(data: bytes) -> Element:
    """Parse an answer; a ``<result>`` root with a negative errorcode raises `ApiError`."""
    root = parse_document(data)
    if local(root.tag) == "result":
        check_envelope(root)
    return root


# -- exportVideo ---------------------------------------------------------------------------


def _utc_text(moment: datetime) -> str:
    """``yyyy-mm-dd hh:nn:ss.zzz`` in UTC (milliseconds truncated)."""
    utc = moment.astimezone(timezone.utc)
    return f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}"


def _xml_text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if _NOT_XML_TEXT.search(value):
        raise ValueError(f"{what} contains a control character that XML cannot carry")
    return escape(value)


def _number_text(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"bandwidth_kbps must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"bandwidth_kbps must be a positive number, not {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return format(value, "f").rstrip("0")


def export_body(
    spans: Iterable[DeviceSpan], *, path: str | None, bandwidth_kbps: float | None
) -> bytes:
    """The ``<export>`` body that asks ``exportVideo`` for a new export.

    Raises:
        ValueError: no spans, a bad bandwidth, or text XML cannot carry.
        TypeError: something other than a `DeviceSpan` among the spans.
    """
    parts = ["<export><devices>"]
    for span in spans:
        if not isinstance(span, DeviceSpan):
            raise TypeError(f"expected DeviceSpan, not {type(span).__name__}")
        parts += [
            "<device><serverid>",
            _xml_text(span.server_id, "server_id"),
            "</serverid><deviceid>",
            _xml_text(span.device_id, "device_id"),
            f"</deviceid><starttime>{_utc_text(span.start)}</starttime>",
            f"<endtime>{_utc_text(span.end)}</endtime></device>",
        ]
    if len(parts) == 1:
        raise ValueError("an export needs at least one DeviceSpan")
    parts.append("</devices>")
    if path is not None:
        parts.append(f"<path>{_xml_text(path, 'path')}</path>")
    if bandwidth_kbps is not None:
        parts.append(f"<bandwidth>{_number_text(bandwidth_kbps)}</bandwidth>")
    parts.append("</export>")
    return "".join(parts).encode()


def remove_body(export_id: str) -> bytes:
    """The body that asks ``exportVideo`` to remove an export (a guess: see `remove_export`)."""
    export_id = _xml_text(export_id, "export_id")
    return f"<export><exportid>{export_id}</exportid><remove>true</remove></export>".encode()


def find_export_id(data: bytes) -> str:
    """The new export's id in an ``exportVideo`` answer, wherever it is.

    The first non-empty ``<exportid>`` element or ``exportid`` attribute (any case, any
    depth, document order) wins.

    Raises:
        ApiError: a ``<result>`` with a negative errorcode.
        ProtocolError: not safe XML, or no export id in it; the message shows the body.
    """
    root = check_answer(data)
    for elem in root.iter():
        for name, value in elem.attrib.items():
            if local(name) == "exportid" and value.strip():
                return value.strip()
        if isinstance(elem.tag, str) and local(elem.tag) == "exportid":
            text = (elem.text or "").strip()
            if text:
                return text
    raise ProtocolError(f"no export id in the exportVideo answer: {shown(data)}")


# -- /info ---------------------------------------------------------------------------------


def parse_info(data: bytes) -> ServerInfo:
    """`ServerInfo` from ``<apiinfo><utc/><version/></apiinfo>`` (any case, any wrapper).

    Raises:
        ProtocolError: not safe XML, or no ``<version>`` in it.
    """
    root = check_answer(data)
    version = find_text(root, "version")
    if version is None:
        raise ProtocolError(f"no <version> in the /info answer: {shown(data)}")
    utc = find_text(root, "utc")
    return ServerInfo(version, None if utc is None else read_timestamp(utc))


def version_tuple(version: str) -> tuple[int, ...] | None:
    """``"2.10.1 (build 7)"`` -> ``(2, 10, 1)``; ``None`` without any number."""
    found = _VERSION.search(version)
    if found is None:
        return None
    parts = found.group().split(".")
    if any(len(part) > _MAX_VERSION_DIGITS for part in parts):
        return None  # not a version (and int() refuses over 4,300 digits)
    return tuple(int(part) for part in parts)


def require_exports(info: ServerInfo) -> ServerInfo:
    """Return ``info`` if that server has ``exportVideo`` (2.7.3+); else raise `VdgError`."""
    minimum = ".".join(map(str, MIN_EXPORT_VERSION))
    numbers = version_tuple(info.version)
    if numbers is None:
        raise VdgError(f"unreadable VDG Sense version {info.version[:40]!r} (need {minimum}+)")
    width = max(len(numbers), len(MIN_EXPORT_VERSION))
    padded = numbers + (0,) * (width - len(numbers))
    if padded < MIN_EXPORT_VERSION + (0,) * (width - len(MIN_EXPORT_VERSION)):
        raise VdgError(
            f"VDG Sense {info.version[:40]} is too old: "
            f"exports (exportVideo) need {minimum} or later"
        )
    return info

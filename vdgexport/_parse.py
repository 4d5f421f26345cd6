"""Response bytes to typed models, safely.

Safety comes first and costs nothing per element: before any tree is built the body is
checked for what makes XML dangerous — a document type declaration (which is where entity
declarations, billion laughs, quadratic blow-up and external entities live) and any
encoding in which such a check could be hidden. A document without a DTD cannot declare
entities, and expat then refuses any entity it does not know.

Small answers (one export, login, exportVideo, /info) are then parsed by `defusedxml`
itself (``forbid_dtd=True``): `parse_document`. Only the whole list, where speed matters,
is built by expat and the C ``TreeBuilder`` alone (`parse_tree`, and `_incremental`), and a
differential test (tests/test_differential.py) holds that path to defusedxml's verdict.

The encoding is read from the byte order mark and the whole XML declaration, and handed to
expat explicitly: every spelling of UTF-8 that Python knows (``utf8``, ``UTF_8``, ``u8``)
is read as UTF-8, and any encoding other than UTF-8, ASCII, ISO-8859-1 or windows-1252 is
a `ProtocolError` before expat sees a byte.
"""

from __future__ import annotations

import codecs
import gc
import re
from codecs import BOM_UTF8
from collections.abc import Iterator
from contextlib import contextmanager
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

from ._build import exports_from, int_or_none, local, read_timestamp
from ._exceptions import ProtocolError, api_error
from ._models import Export, ExportList

__all__ = [
    "check_envelope",
    "check_root",
    "collector_paused",
    "exports_from",
    "local",
    "malformed",
    "parse_document",
    "parse_export",
    "parse_export_list",
    "parse_tree",
    "pick_export",
    "read_timestamp",
    "refuse_empty",
    "refuse_unsafe",
]

# Inside the declaration (linear: each try at a position fails within a few bytes, and
# matches of "encoding" do not overlap).
_ENCODING = re.compile(rb"[ \t\r\n]encoding[ \t\r\n]*=[ \t\r\n]*(?:\"([^\"]*)\"|'([^']*)')")
_ENCODING_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")  # XML's EncName
# Python's canonical codec name -> the name handed to expat.
_EXPAT_ENCODINGS = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    "ascii": "us-ascii",
    "iso8859-1": "iso-8859-1",
    "latin-1": "iso-8859-1",
    "cp1252": "windows-1252",
}
# More attributes in one tag than any answer has: expat's time grows faster than linearly with
# them (a 16 MiB tag of attributes took 2 s). Searched only when "=" is that frequent at all;
# linear: each try runs from a "<" to the next "<" or ">", and tries do not overlap.
_MAX_ATTRIBUTES = 1000
_MANY_ATTRIBUTES = re.compile(rb"<(?:[^<>=]*=){%d}" % (_MAX_ATTRIBUTES + 1))
_HTML = re.compile(rb"[ \t\r\n]*(?:<!doctype[ \t\r\n]+html|<html)", re.IGNORECASE)
_UNSAFE = "unsafe XML refused: a document type declaration (DTD) or an entity"


def refuse_unsafe(data: bytes) -> str:
    """Raise `ProtocolError` unless ``data`` is XML that cannot declare entities.

    Returns the encoding to hand to expat (``"utf-8"`` unless the document says otherwise).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f")) or b"\x00" in data[:4]:
        raise ProtocolError("unsupported encoding: only UTF-8 and ASCII-compatible XML")
    encoding = document_encoding(data)
    if data.count(b"=") > _MAX_ATTRIBUTES and _MANY_ATTRIBUTES.search(data) is not None:
        raise ProtocolError(f"a tag with more than {_MAX_ATTRIBUTES:,} attributes: not an answer")
    # "!" is rare in an answer: one memchr-fast search spares two slower ones.
    if b"!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        if b"<!ENTITY" not in data and _is_html(data):
            raise ProtocolError("an HTML page, not XML (a proxy's error page?)")
        raise ProtocolError(_UNSAFE, unsafe=True)
    return encoding


def document_encoding(data: bytes) -> str:
    """The encoding of ``data`` by its UTF-8 byte order mark and its XML declaration.

    Raises:
        ProtocolError: a name Python does not know, or an encoding other than UTF-8,
            ASCII, ISO-8859-1 or windows-1252 (in which the byte check could be hidden).
    """
    bom = data.startswith(BOM_UTF8)
    start = 3 if bom else 0
    if not data.startswith(b"<?xml", start):
        return "utf-8"
    end = data.find(b"?>", start)
    found = _ENCODING.search(data, start, len(data) if end < 0 else end)
    if found is None:
        return "utf-8"
    name = (found.group(1) or found.group(2) or b"").decode("latin-1")
    shown = repr(name[:40])
    if _ENCODING_NAME.fullmatch(name) is None:
        raise ProtocolError(f"malformed XML: an encoding name {shown}")
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise ProtocolError(f"unknown encoding {shown}") from None
    expat = _EXPAT_ENCODINGS.get(canonical)
    if expat is None:
        raise ProtocolError(f"unsupported encoding {shown}: only UTF-8 and ASCII-compatible XML")
    if bom and expat != "utf-8":
        raise ProtocolError(f"a UTF-8 byte order mark, but the declaration says {shown}")
    return expat


def parse_document(data: bytes) -> Element:
    """The root element of a safe, well-formed body, whatever its tag, by `defusedxml`.

    Raises:
        ProtocolError: empty, unsafe (DTD, entities, foreign encoding), HTML or malformed.
    """
    refuse_empty(data)
    parser = DefusedXMLParser(target=TreeBuilder(), encoding=refuse_unsafe(data), forbid_dtd=True)
    try:
        parser.feed(data)
        root: Element = parser.close()
    except DefusedXmlException:
        raise ProtocolError(_UNSAFE, unsafe=True) from None
    except ParseError as exc:
        raise malformed(data, exc) from None
    except (ValueError, LookupError) as exc:  # pragma: no cover - the encoding is checked
        raise ProtocolError(f"unreadable XML: {exc}") from None
    return root


def parse_tree(data: bytes) -> Element:
    """The ``<result>`` element of a whole-list body, by expat and the C tree builder.

    Refuses what `parse_document` refuses; the differential test holds it to that.
    """
    refuse_empty(data)
    parser = XMLParser(encoding=refuse_unsafe(data))
    try:
        parser.feed(data)
        root = parser.close()
    except ParseError as exc:
        raise malformed(data, exc) from None
    return check_root(root)


def refuse_empty(data: bytes) -> None:
    """`ProtocolError` for a body that is empty or white space only."""
    if not data or data.isspace():
        raise ProtocolError("empty body")


def _is_html(data: bytes) -> bool:
    return _HTML.match(data, 3 if data.startswith(BOM_UTF8) else 0) is not None


def malformed(data: bytes, exc: ParseError) -> ProtocolError:
    """The `ProtocolError` for a body expat refused: an HTML page, or malformed XML."""
    if _is_html(data):
        return ProtocolError("an HTML page, not XML (a proxy's error page?)")
    return ProtocolError(f"malformed XML: {exc}")


def check_root(root: Element) -> Element:
    """``root`` if it is ``<result>``; `ProtocolError` naming what it is otherwise."""
    tag = local(root.tag)
    if tag != "result":
        what = "an HTML page" if tag == "html" else f"root element <{tag[:40]}>"
        raise ProtocolError(f"expected <result>, got {what}")
    return root


def check_envelope(root: Element) -> None:
    """Raise the typed `ApiError` if ``<result errorcode>`` is negative."""
    raw = root.get("errorcode")
    if raw is None:
        raw = next((v for k, v in root.attrib.items() if k.lower() == "errorcode"), None)
    if raw is None:
        return
    code = int_or_none(raw)
    if code is None:
        raise ProtocolError(f"errorcode is not a number: {raw[:40]!r}")
    if code < 0:
        description = next((c for c in root if local(c.tag) == "description"), None)
        text = "" if description is None else (description.text or "").strip()
        raise api_error(code, text)


def parse_export_list(data: bytes) -> ExportList:
    """Parse a whole-list answer into an `ExportList`, in one go.

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
        exports = exports_from(root)
        del root  # the tree goes before the collector may run again
    return exports


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
    """Parse a per-id answer (by `defusedxml`) into the `Export` named ``export_id``.

    An answer that lists no such export raises `ExportNotFoundError`, like -57.
    """
    root = check_root(parse_document(data))
    check_envelope(root)
    return pick_export(exports_from(root), export_id)


def pick_export(found: ExportList, export_id: str) -> Export:
    """The export named ``export_id`` in a per-id answer's ``found`` exports.

    One export without an id is taken as the one asked for; no such export raises
    `ExportNotFoundError`, like -57.
    """
    export = found.get(export_id)
    if export is None:
        if len(found) == 1 and found.count == 1 and not found[0].export_id:
            return found[0]
        raise api_error(-57, f"export {export_id!r} is not in the answer")
    return export

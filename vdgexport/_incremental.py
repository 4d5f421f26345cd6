"""Whole-list parsing whose work follows what changed, not what exists.

A server may list thousands of exports of which a few move between two polls. `ListParser`
splits a plainly written list into the bytes of each ``<export>``, and builds models only for
the exports whose bytes it has not seen in the previous answer; the others are the previous
answer's very objects, so the poller need not diff them either.

Nothing is trusted for that: the body is refused if unsafe (the same check as
`parse_export_list`), the envelope before the first ``<export>`` and every new export are
parsed by the C parser, and the answer is parsed whole, the ordinary way, whenever the split
is not certain (comments, CDATA, processing instructions, an encoding other than UTF-8, namespace
prefixes in the envelope, tags in another case, attributes on ``<export>``, anything
between two exports but XML white space).
"""

from __future__ import annotations

import re
from hashlib import blake2b
from xml.etree.ElementTree import ParseError, fromstring

from ._exceptions import ProtocolError
from ._models import Export, ExportList
from ._parse import (
    check_envelope,
    collector_paused,
    export_from,
    exports_from,
    parse_export_list,
    parse_tree,
    refuse_unsafe,
)

__all__ = ["ListParser"]

_OPEN, _CLOSE = b"<export>", b"</export>"
_WS = rb"[ \t\r\n]*"  # XML's white space: not Python's wider \s
_HEAD = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:<\?xml version=\"1\.[01]\"(?: encoding=\"(?i:utf-8)\")?"
    rb"(?: standalone=\"(?:yes|no)\")?"
    + _WS
    + rb"\?>)?"
    + _WS
    + rb"<result\b[^<>:]*>"
    + _WS
    + rb"<exports\b[^<>:]*>"
    + _WS
    + rb"\Z"
)
_TAIL = re.compile(
    _WS + rb"</exports" + _WS + rb">" + _WS + rb"</result" + _WS + rb">" + _WS + rb"\Z"
)
_XML_WS = b" \t\r\n"
_Digest = bytes


class ListParser:
    """`parse_export_list` that rebuilds only the exports whose bytes changed.

    It remembers the previous answer (a 16-byte digest per export, and the models): an
    answer whose exports are all unchanged returns the previous `ExportList` object itself.

    Example:
        >>> parser = ListParser()
        >>> body = b'<result errorcode="0"><exports count="0"></exports></result>'
        >>> parser.parse(body) is parser.parse(body)
        True
    """

    __slots__ = ("_cache", "_head", "_last")

    def __init__(self) -> None:
        self._cache: dict[_Digest, Export] = {}
        self._head = b""
        self._last: ExportList | None = None

    def parse(self, data: bytes) -> ExportList:
        """Parse a whole-list answer, reusing the models of unchanged exports."""
        refuse_unsafe(data)
        split = _split(data)
        if split is None:
            self._cache, self._head = {}, b""
            self._last = parse_export_list(data)
            return self._last
        head, parts = split
        digests = [blake2b(p, digest_size=16).digest() for p in parts]
        cache = self._cache
        missing = {d: p for d, p in zip(digests, parts, strict=True) if d not in cache}
        last = self._last
        if not missing and last is not None and self._unchanged(head, digests, last):
            return last
        count = _envelope(head) if head != self._head or last is None else last.count
        fresh = dict(zip(missing, _build(list(missing.values())), strict=True))
        exports = tuple(cache.get(d) or fresh[d] for d in digests)
        self._cache = dict(zip(digests, exports, strict=True))
        self._head, self._last = head, ExportList(exports, count)
        return self._last

    def _unchanged(self, head: bytes, digests: list[_Digest], last: ExportList) -> bool:
        if head != self._head or len(last) != len(digests):
            return False
        cache = self._cache
        return all(cache[d] is e for d, e in zip(digests, last.exports, strict=True))


def _split(data: bytes) -> tuple[bytes, list[bytes]] | None:
    """``(envelope head, [bytes of each export])``, or ``None`` when not certain."""
    if b"<!" in data or b"<?" in data[5:]:
        return None
    pieces = data.split(_OPEN)
    head = pieces[0]
    if len(pieces) < 2 or _HEAD.match(head) is None:
        return None
    last = pieces[-1]
    tail = _TAIL.search(last)
    if tail is None:
        return None
    pieces[-1] = last[: tail.start()]
    parts = pieces[1:]
    for i, part in enumerate(parts):
        end = part.find(_CLOSE)
        if end < 0 or part[end + len(_CLOSE) :].strip(_XML_WS) or part.count(_CLOSE) != 1:
            return None
        parts[i] = part[: end + len(_CLOSE)]
    return head, parts


def _envelope(head: bytes) -> int | None:
    root = parse_tree(head + b"</exports></result>")
    check_envelope(root)
    return exports_from(root).count


def _build(parts: list[bytes]) -> list[Export]:
    """Models of new exports, parsed together in one call of the C parser."""
    if not parts:
        return []
    with collector_paused():
        try:
            batch = fromstring(b"<x>" + b"".join(_OPEN + p for p in parts) + b"</x>")
        except ParseError as exc:
            raise ProtocolError(f"malformed XML: {exc}") from None
        if len(batch) != len(parts) or any(e.tag != "export" for e in batch):
            raise ProtocolError("malformed XML: an export element is not closed where expected")
        return [export_from(e) for e in batch]

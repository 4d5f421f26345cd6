"""Whole-list parsing whose work follows what changed, and that never blocks the loop long.

A server may list thousands of exports of which a few move between two polls. `ListParser`
splits a plainly written list into the bytes of each ``<export>``, and builds models only for
the exports whose bytes it has not seen in the previous answer; the others are the previous
answer's very objects, so the poller need not diff them either. New exports written the plain
way are read by `_template` without a tree; the others are parsed by expat together.

Nothing is trusted for that: the body is refused if unsafe (the same check as
`parse_export_list`), the envelope before the first ``<export>`` and every new export are
parsed by the C parser, and the answer is parsed whole, the ordinary way, whenever the split
is not certain (comments, CDATA, processing instructions, an encoding other than UTF-8, namespace
prefixes in the envelope, tags in another case, attributes on ``<export>``, anything
between two exports but XML white space).

The work is a generator of steps of at most about a mebibyte each: `ListParser.parse` runs
them in one go, `ListParser.parse_async` yields to the event loop between them, so that a
16 MiB answer never holds the loop for long (a worker thread would not help: the parser
holds the GIL).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator
from hashlib import blake2b
from typing import TypeVar
from xml.etree.ElementTree import ParseError, XMLParser, fromstring

import anyio.lowlevel

from ._build import export_elements, export_from, exports_from
from ._exceptions import ProtocolError
from ._models import Export, ExportList
from ._parse import (
    check_envelope,
    check_root,
    collector_paused,
    malformed,
    parse_export,
    parse_tree,
    pick_export,
    refuse_empty,
    refuse_unsafe,
)
from ._template import exports_from_parts, plain_body

__all__ = ["ListParser", "parse_export_async"]

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
# Matched from where ``</exports`` is (one ``rfind``), never searched for: a search tries
# every start in a run of white space and costs its length at each (quadratic).
_TAIL = re.compile(rb"</exports" + _WS + rb">" + _WS + rb"</result" + _WS + rb">" + _WS)
_XML_WS = b" \t\r\n"
_ODD_EXPORT_TAG = re.compile(rb"</?export[ \t\r\n/]")
_SLICE = 1 << 20  # bytes of body per step
_BATCH = 500  # exports per step at most
_PART_BYTES = 256 << 10  # bytes of new exports per step (about 4,000 devices)
_ASSEMBLED = 50_000  # exports put in order per step
_MODELS = 4000  # models (exports and devices) built per step of a whole parse
_T = TypeVar("_T")
_Digest = bytes
_Steps = Generator[None, None, ExportList]


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
        steps = self._steps(data)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: ExportList = done.value
                return result

    async def parse_async(self, data: bytes) -> ExportList:
        """`parse`, yielding to the event loop between steps of about 1 MiB each."""
        steps = self._steps(data)
        try:
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    result: ExportList = done.value
                    return result
                await anyio.lowlevel.checkpoint()
        finally:
            steps.close()

    def _steps(self, data: bytes) -> _Steps:
        encoding = refuse_unsafe(data)
        big = len(data) > _SLICE
        if big:
            yield
        split = _split(data)
        if split is None:
            result = yield from _whole(data, encoding)
            self._cache, self._head, self._last = {}, b"", result
            return result
        head, parts = split
        if big:
            yield
        digests = yield from _digests(parts)
        if big:
            yield
        cache = self._cache
        missing = {d: p for d, p in zip(digests, parts, strict=True) if d not in cache}
        del parts
        last = self._last
        if not missing and last is not None and self._unchanged(head, digests, last):
            return last
        count = _envelope(head) if head != self._head or last is None else last.count
        plain = plain_body(data)
        if big:
            yield
        built = yield from _build(list(missing.values()), plain)
        fresh = dict(zip(missing, built, strict=True))
        del built
        exports: list[Export] = []
        kept: dict[_Digest, Export] = {}
        for start in range(0, len(digests), _ASSEMBLED):  # 350,000 tiny exports: 1 s at once
            if start:
                yield
            chunk = digests[start : start + _ASSEMBLED]
            models = [cache.get(d) or fresh[d] for d in chunk]
            exports.extend(models)
            kept.update(zip(chunk, models, strict=True))
        if big:
            yield
        result = ExportList(tuple(exports), count)
        self._cache, self._head, self._last = kept, head, result
        return result

    def _unchanged(self, head: bytes, digests: list[_Digest], last: ExportList) -> bool:
        if head != self._head or len(last) != len(digests):
            return False
        cache = self._cache
        return all(cache[d] is e for d, e in zip(digests, last.exports, strict=True))


async def parse_export_async(data: bytes, export_id: str) -> Export:
    """`parse_export`, in steps when ``data`` is over a mebibyte (one export is a few KiB).

    A server (or a proxy) that ignores ``exportid`` answers the whole list: parsed at once
    by defusedxml, 16 MiB would hold the event loop for seconds at every poll.
    """
    if len(data) <= _SLICE:
        return parse_export(data, export_id)
    return pick_export(await ListParser().parse_async(data), export_id)


def _split(data: bytes) -> tuple[bytes, list[bytes]] | None:
    """``(envelope head, [bytes of each export])``, or ``None`` when not certain.

    Each export's bytes are what follows ``<export>``, up to and including ``</export>``.
    """
    # "!" and "?" are rare in an answer: memchr-fast searches spare slower ones.
    if b"!" in data and b"<!" in data:
        return None
    after = data.find(b"?>") + 2 if data.startswith((b"<?xml", b"\xef\xbb\xbf<?xml")) else 5
    if data.find(b"?", max(after, 5)) >= 0 and data.find(b"<?", 5) >= 0:
        return None
    pieces = data.split(_OPEN)
    head = pieces[0]
    if len(pieces) < 2 or _HEAD.match(head) is None:
        return None
    last = pieces[-1]
    tail = last.rfind(b"</exports")
    if tail < 0 or _TAIL.fullmatch(last, tail) is None:
        return None
    # Every export tag must be the plain ``<export>`` / ``</export>``: an ``<export a="1">``
    # (or a ``</export >``) could open or close an export the split cannot see, and a part
    # read alone (or found in the cache) would then mean something else than in context.
    if _ODD_EXPORT_TAG.search(data) is not None:
        return None
    pieces[-1] = last[:tail]
    parts = pieces[1:]
    for i, part in enumerate(parts):
        # Exactly one </export>, at the end (white space may follow it): a part with two
        # is valid only in a context that opened another export, so it is never split.
        end = part.find(_CLOSE) + len(_CLOSE)
        if end < len(_CLOSE):
            return None
        if end < len(part):
            if part[end:].strip(_XML_WS):
                return None
            parts[i] = part[:end]
    return head, parts


def _digests(parts: list[bytes]) -> Generator[None, None, list[_Digest]]:
    digests: list[_Digest] = []
    size = 0
    for part in parts:
        digests.append(blake2b(part, digest_size=16).digest())
        size += len(part)
        if size > 4 * _SLICE:
            size = 0
            yield
    return digests


def _envelope(head: bytes) -> int | None:
    root = parse_tree(head + b"</exports></result>")
    check_envelope(root)
    return exports_from(root).count


def _build(parts: list[bytes], plain: bool) -> Generator[None, None, list[Export]]:
    """Models of new exports, in steps: the plain ones by `_template`, the rest by expat."""
    built: list[Export] = []
    for batch in _batches(parts, map(len, parts), _PART_BYTES):
        if built:
            yield
        with collector_paused():  # a step's own models: walked once, after it
            plainly = exports_from_parts(batch) if plain else [None] * len(batch)
            others = [p for p, m in zip(batch, plainly, strict=True) if m is None]
            parsed = iter(_parse_parts(others) if others else ())
            built.extend([next(parsed) if m is None else m for m in plainly])
    return built


def _batches(items: list[_T], weights: Iterable[int], budget: int) -> Iterator[list[_T]]:
    """``items`` in runs of at most `_BATCH` whose ``weights`` add up to about ``budget``."""
    start = total = 0
    for end, weight in enumerate(weights, 1):
        total += weight
        if total >= budget or end - start >= _BATCH:
            yield items[start:end]
            start, total = end, 0
    if start < len(items):
        yield items[start:]


def _parse_parts(parts: list[bytes]) -> list[Export]:
    """Models of exports parsed together in one call of the C parser."""
    try:
        batch = fromstring(b"<x>" + b"".join(_OPEN + p for p in parts) + b"</x>")
    except ParseError as exc:
        raise ProtocolError(f"malformed XML: {exc}") from None
    if len(batch) != len(parts) or any(e.tag != "export" for e in batch):
        raise ProtocolError("malformed XML: an export element is not closed where expected")
    return [export_from(e) for e in batch]


def _whole(data: bytes, encoding: str) -> _Steps:
    """The answer parsed whole (not split): fed to expat in slices, models in batches.

    The collector stays paused throughout, also across the checkpoints (the generator's
    close ends the pause on cancellation): between slices it would walk the growing tree
    again and again, and once the tree is gone there is nothing left of it to walk.
    """
    refuse_empty(data)
    with collector_paused():
        parser = XMLParser(encoding=encoding)
        try:
            for start in range(0, len(data), _SLICE):
                parser.feed(data[start : start + _SLICE])
                if len(data) > _SLICE:
                    yield
            root = check_root(parser.close())
        except ParseError as exc:
            raise malformed(data, exc) from None
        check_envelope(root)
        elements, count = export_elements(root)
        del root, parser  # the tree goes before the collector may run again
        exports: list[Export] = []
        # Weighed by their grandchildren (the devices): one model each.
        for batch in _batches(elements, (sum(map(len, e)) + 1 for e in elements), _MODELS):
            if exports:
                yield
            exports.extend([export_from(e) for e in batch])
        del elements
    return ExportList(tuple(exports), count)

"""The byte-scan fast path: an export written the plain way becomes a model without a tree.

A server writes its list the same way every time: the documented children in the
documented order, no attributes, no entity or character references, no comments. Such an
export is read by one regular expression (each text a run of characters that XML allows in
text, so that the text *is* its character data) and one split of its devices, instead of
expat building a tree of 34 elements that Python then walks. Anything else — another order,
an unknown child, an attribute, a reference, a carriage return (which XML rewrites) — does
not match, and the caller parses that export with expat instead. Both paths give equal
models (tests/test_differential.py holds them to the tree and to defusedxml).

Every pattern here is linear: character classes and fixed tags, no nested repetition of
what a class could also match.
"""

from __future__ import annotations

import re
from itertools import chain, islice, repeat

from ._columns import DeviceRow, devices_from_rows, exports_from_rows
from ._models import Export

__all__ = ["exports_from_parts", "plain_body"]

# Character data that needs no rewriting: not markup, not a reference, no carriage return,
# and only characters XML allows (C0 controls but tab and line feed, U+FFFE/FFFF are not).
_TEXT = r"([^<&\x00-\x08\x0b-\x1f\ufffe\uffff]*)"  # \r is \x0d
_DEVICE_TAGS = ("serverid", "deviceid", "starttime", "endtime", "progress", "status")
_EXPORT_TAGS = ("exportid", "path", "status", "bandwidth")


def _patterns(space: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """``(one export, one device, each export of a batch)`` with ``space`` between elements.

    A batch is the exports' texts each after a NUL (never in XML), and a NUL at the end:
    the third pattern matches an export from a NUL up to the next NUL. Each pattern begins
    with a literal where it can, which the engine searches for fast (a look-behind there
    would make it try every position of a long text).
    """

    def element(tag: str) -> str:
        return f"<{tag}>{_TEXT}</{tag}>"

    device = f"<device>{space}{space.join(map(element, _DEVICE_TAGS))}{space}</device>"
    export = (
        f"{space}{space.join(map(element, _EXPORT_TAGS))}{space}<devices>"
        f"((?:{space}{device.replace('(', '(?:')})*){space}</devices>{space}</export>"
    )
    batch = f"\x00{export}(?=\x00)"
    return re.compile(export), re.compile(device), re.compile(batch)


# Written without white space between elements (as servers write), or with XML's white
# space (pretty-printed): tried in this order, the first is about twice as fast.
_PATTERNS = (_patterns(""), _patterns(r"[ \t\r\n]*"))
# The quickest reading of a batch written without white space: each export's devices are
# taken whole (up to the NUL that ends it, then back to ``</devices>``), then read by the
# device pattern; that they are nothing but devices is checked by length, since the matches
# cannot overlap or leave the devices' text: they cover it all exactly when the lengths of
# their tags and texts add up to its length.
_LOOSE = re.compile(
    "\x00"
    + "".join(f"<{t}>{_TEXT}</{t}>" for t in _EXPORT_TAGS)
    + "<devices>([^\x00]*)</devices></export>(?=\x00)"
)
_DEVICE_TAGS_LENGTH = len("<device></device>") + sum(len(f"<{t}></{t}>") for t in _DEVICE_TAGS)


def plain_body(data: bytes) -> bool:
    """Whether the exports of ``data`` may be read by `exports_from_parts` at all.

    ``]]>`` may not appear in XML text; a body that holds it anywhere is left to expat.
    """
    return b"]" not in data or b"]]>" not in data  # "]" is rare: a memchr-fast search first


def exports_from_parts(parts: list[bytes]) -> list[Export | None]:
    """The `Export` of each ``<export>``'s content and end tag, ``None`` where not plain.

    Each part is what follows ``<export>`` up to and including ``</export>``, in UTF-8.
    """
    joined = b"\x00".join(parts)
    if joined.count(b"\x00") == len(parts) - 1:
        try:
            text = "\x00" + joined.decode() + "\x00"
        except UnicodeDecodeError:
            text = ""
        rows = _LOOSE.findall(text) if text else []
        if len(rows) == len(parts):
            device_rows = _PATTERNS[0][1].findall(text)
            texts = sum(map(len, chain.from_iterable(device_rows)))
            covered = texts + _DEVICE_TAGS_LENGTH * len(device_rows)
            if covered == sum(len(r[4]) for r in rows):
                return _models(rows, device_rows)  # type: ignore[return-value]
        elif _spaced(text):
            _, device, batch = _PATTERNS[1]
            rows = batch.findall(text)
            if len(rows) == len(parts):  # every export plain: read in one go
                return _models(rows, device.findall(text))  # type: ignore[return-value]
    return _one_by_one(parts)


_SPACE_AFTER_TAG = re.compile(r">[ \t\r\n]")


def _spaced(text: str) -> bool:
    """Whether ``text`` may hold white space between elements (else one pattern will do)."""
    # One-character searches are memchr-fast; ">\n" in a text of many ">" is not.
    return any(c in text for c in " \t\r\n") and _SPACE_AFTER_TAG.search(text) is not None


def _models(rows: list[tuple[str, ...]], device_rows: list[DeviceRow]) -> list[Export]:
    """The exports of ``rows`` (four texts and the devices' text), devices in order."""
    devices = iter(devices_from_rows(device_rows))
    counts = map(str.count, [r[4] for r in rows], repeat("<device>"))
    grouped = [tuple(islice(devices, n)) for n in counts]
    return exports_from_rows(rows, grouped)  # type: ignore[arg-type]  # the first four


def _one_by_one(parts: list[bytes]) -> list[Export | None]:
    results: list[Export | None] = [None] * len(parts)
    rows: list[tuple[str, ...]] = []
    device_rows: list[DeviceRow] = []
    places: list[int] = []
    for place, part in enumerate(parts):
        try:
            text = part.decode()
        except UnicodeDecodeError:
            continue
        for export, device, _ in _PATTERNS if _spaced(text) else _PATTERNS[:1]:
            found = export.fullmatch(text)
            if found is not None:
                rows.append(found.groups())
                device_rows += device.findall(found.group(5))
                places.append(place)
                break
    for place, model in zip(places, _models(rows, device_rows), strict=True):
        results[place] = model
    return results

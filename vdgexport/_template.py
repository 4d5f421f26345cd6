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

from ._build import device_from_texts, export_from_texts
from ._models import Export

__all__ = ["export_from_bytes", "plain_body"]

# Character data that needs no rewriting: not markup, not a reference, no carriage return,
# and only characters XML allows (C0 controls but tab and line feed, U+FFFE/FFFF are not).
_TEXT = r"([^<&\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]*)"
_DEVICE_TAGS = ("serverid", "deviceid", "starttime", "endtime", "progress", "status")
_EXPORT_TAGS = ("exportid", "path", "status", "bandwidth")


def _patterns(space: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """``(one export, one device)`` with ``space`` between elements."""

    def element(tag: str) -> str:
        return f"<{tag}>{_TEXT}</{tag}>"

    device = f"{space}<device>{space}{space.join(map(element, _DEVICE_TAGS))}{space}</device>"
    export = (
        f"{space}{space.join(map(element, _EXPORT_TAGS))}{space}<devices>"
        f"((?:{device.replace('(', '(?:')})*){space}</devices>{space}</export>"
    )
    return re.compile(export), re.compile(device)


# Written without white space between elements (as servers write), or with XML's white
# space (pretty-printed): tried in this order, the first is about twice as fast.
_PATTERNS = (_patterns(""), _patterns(r"[ \t\r\n]*"))


def plain_body(data: bytes) -> bool:
    """Whether the exports of ``data`` may be read by `export_from_bytes` at all.

    ``]]>`` may not appear in XML text; a body that holds it anywhere is left to expat.
    """
    return b"]]>" not in data


def export_from_bytes(part: bytes) -> Export | None:
    """The `Export` of one ``<export>``'s content and end tag, or ``None`` if not plain.

    ``part`` is what follows ``<export>`` up to and including ``</export>``, in UTF-8.
    """
    try:
        text = part.decode()
    except UnicodeDecodeError:
        return None
    for export, device in _PATTERNS:
        found = export.fullmatch(text)
        if found is not None:
            export_id, path, status, bandwidth, blob = found.groups()
            devices = tuple([device_from_texts(*d) for d in device.findall(blob)])
            return export_from_texts(export_id, path, status, bandwidth, devices)
    return None

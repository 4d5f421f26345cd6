"""Pathological shapes up to the size cap (issue 10): every scan of a body must be linear.

Each shape is a well-formed (or nearly) answer of about ``size`` bytes that stresses one
scan: long runs of white space (the old tail regex was quadratic on them), a million
siblings, deep closed nesting, many attributes, long texts. Each is parsed cold by
`ListParser.parse` (what a client runs) in interleaved rounds, and its time per MiB is
shown beside the time per MiB of a normal list of the same size: anything superlinear
shows as a ratio that grows with the size. Target: every shape within 3x.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import vdgexport
from vdgexport._incremental import ListParser

from ._common import simulator_body

__all__ = ["run", "shapes"]

_HEAD = b'<?xml version="1.0" encoding="UTF-8"?><result errorcode="0"><exports count="1">'
_TAIL = b"</exports></result>"
_EXPORT = (
    b"<export><exportid>1</exportid><path>p</path><status>SYNCING</status>"
    b"<bandwidth>1</bandwidth><devices></devices></export>"
)
_MIB = 1024 * 1024


def _fill(unit: bytes, room: int) -> bytes:
    return unit * max(1, room // len(unit))


def shapes(size: int) -> dict[str, bytes]:
    """Each shape, about ``size`` bytes; "normal list" is the simulator's list."""
    room = size - 200
    many = b" ".join(b'a%d="v"' % i for i in range(room // 12))
    depth = room // 7
    return {
        "normal list": simulator_body(max(1, size // 1230)),
        "white space before an unknown element": _HEAD + _EXPORT + b" " * room + b"<x/>" + _TAIL,
        "white space between exports": _HEAD + _fill(_EXPORT + b"\n" * 50_000, room) + _TAIL,
        "a million siblings (unknown, empty)": _HEAD + _fill(b"<x/>", room) + _TAIL,
        "deep closed nesting in an export": _HEAD
        + b"<export><exportid>1</exportid><x>"
        + b"<a>" * depth
        + b"</a>" * depth
        + b"</x></export>"
        + _TAIL,
        "many attributes (refused)": _HEAD + b"<export " + many + b"/>" + _TAIL,
        "a long text": _HEAD + b"<export><path>" + b"a" * room + b"</path></export>" + _TAIL,
        "a long text of references": _HEAD
        + b"<export><path>"
        + _fill(b"&amp;", room)
        + b"</path></export>"
        + _TAIL,
        "a long attribute": _HEAD.replace(b'count="1"', b'count="' + b"1" * room + b'"') + _TAIL,
        "a long comment": _HEAD + b"<!--" + b"c" * room + b"-->" + _EXPORT + _TAIL,
        "empty exports (a model each)": _HEAD + _fill(b"<export/>", room) + _TAIL,
    }


def _time(body: bytes) -> tuple[float, str]:
    gc.collect()
    start = time.perf_counter()
    try:
        outcome = f"{len(ListParser().parse(body)):,} exports"
    except vdgexport.VdgError as exc:
        outcome = type(exc).__name__
    return time.perf_counter() - start, outcome


def run(size: int, repeat: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time per MiB of each shape, best of ``repeat`` interleaved rounds, and its ratio."""
    log(f"  shapes: {size / _MIB:.1f} MiB each, {repeat} interleaved rounds")
    bodies = shapes(size)
    best = dict.fromkeys(bodies, float("inf"))
    outcomes: dict[str, str] = {}
    for _ in range(repeat):
        for name, body in bodies.items():
            seconds, outcomes[name] = _time(body)
            best[name] = min(best[name], seconds)
    per_mib = {name: best[name] / (len(bodies[name]) / _MIB) for name in bodies}
    normal = per_mib["normal list"]
    rows = [
        {
            "shape": name,
            "bytes": len(bodies[name]),
            "ms": best[name] * 1e3,
            "ms_per_mib": per_mib[name] * 1e3,
            "ratio": per_mib[name] / normal,
            "outcome": outcomes[name],
        }
        for name in bodies
    ]
    return {"size": size, "repeat": repeat, "rows": rows}

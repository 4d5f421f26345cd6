"""Safe parsing into typed models, beside the C floor and the naive safe baseline.

- ours: ``vdgexport._parse.parse_export_list`` (byte pre-scan, C expat tree with the
  collector paused, hand-optimised walk into frozen slotted models);
- floor: ``xml.etree.ElementTree.fromstring`` on the same bytes (unsafe, no models), timed
  with the collector enabled (as it is by default) and, honestly, also with it disabled,
  since ours pauses it;
- naive: ``defusedxml.ElementTree.fromstring`` plus ``findtext`` per field, building the same
  models through their constructors (what a careful user writes by hand).

It also checks, in the same run, that every hostile document in ``tests/data/hostile-xml``
is still refused with `vdgexport.ProtocolError`.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import defusedxml.ElementTree as DefusedET  # type: ignore[import-untyped]

import vdgexport
from vdgexport import DeviceExport, Export, ExportList, ExportStatus
from vdgexport._parse import parse_export_list

from ._common import best_of, simulator_body

__all__ = ["HOSTILE_DIR", "naive_parse", "run"]

HOSTILE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "hostile-xml"
_UTC = timezone.utc


# -- the naive safe baseline ------------------------------------------------------------


def _naive_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=_UTC)
    except ValueError:
        return None


def _naive_number(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        return None


def naive_parse(data: bytes) -> ExportList:
    """What a careful user writes: defusedxml, ``findtext`` per field, the same models."""
    root = DefusedET.fromstring(data)
    if int(root.get("errorcode", "0")) < 0:
        raise vdgexport.ApiError(int(root.get("errorcode", "0")), root.findtext("description"))
    exports = []
    for e in root.iterfind("exports/export"):
        devices = []
        for d in e.iterfind("devices/device"):
            status = d.findtext("status") or ""
            start, end = d.findtext("starttime") or "", d.findtext("endtime") or ""
            devices.append(
                DeviceExport(
                    server_id=(d.findtext("serverid") or "").strip(),
                    device_id=(d.findtext("deviceid") or "").strip(),
                    start_time=_naive_time(start),
                    end_time=_naive_time(end),
                    progress=min(100.0, max(0.0, _naive_number(d.findtext("progress")) or 0.0)),
                    status=ExportStatus.parse(status),
                    raw_status=status,
                    raw_start_time=start.strip(),
                    raw_end_time=end.strip(),
                )
            )
        status = e.findtext("status") or ""
        exports.append(
            Export(
                export_id=(e.findtext("exportid") or "").strip(),
                path=(e.findtext("path") or "").strip(),
                status=ExportStatus.parse(status),
                bandwidth_kbps=_naive_number(e.findtext("bandwidth")),
                devices=tuple(devices),
                raw_status=status,
            )
        )
    container = root.find("exports")
    count = None if container is None else container.get("count")
    return ExportList(tuple(exports), None if count is None else int(count))


def _floor_no_gc(data: bytes) -> Any:
    gc.disable()
    try:
        return ElementTree.fromstring(data)
    finally:
        gc.enable()


# -- bodies -----------------------------------------------------------------------------

_STAMP = re.compile(rb"<(starttime|endtime)>2024-01-19 10:0(\d):00\.000</")


def distinct_timestamps(body: bytes) -> bytes:
    """The same body with a different time span per device, as a long-running server has.

    The simulator writes the same few spans in every export; a real server's exports cover
    different times, so a cache of parsed timestamps would not help as much.
    """
    counter = iter(range(10**9))

    def stamp(match: re.Match[bytes]) -> bytes:
        n = next(counter)
        moment = datetime(2024, 1, 1) + timedelta(seconds=37 * (n // 2), milliseconds=n % 997)
        text = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
        return b"<" + match.group(1) + b">" + text.encode() + b"</"

    return _STAMP.sub(stamp, body)


# -- running ----------------------------------------------------------------------------


def _measure(name: str, body: bytes, size: int, repeat: int) -> dict[str, Any]:
    number = max(1, 2000 // (size * 4 + 1))  # enough calls per repeat for tiny bodies
    fns: dict[str, Callable[[], object]] = {
        "floor": lambda: ElementTree.fromstring(body),
        "floor_gc_off": lambda: _floor_no_gc(body),
        "ours": lambda: parse_export_list(body),
        "naive": lambda: naive_parse(body),
    }
    # Interleaved: each round times every parser once, so that a noisy machine (a shared
    # VM here) slows all of them alike and the ratios stay meaningful.
    times = {key: float("inf") for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            times[key] = min(times[key], best_of(fn, repeat=1, number=number))
    row: dict[str, Any] = {
        "body": name,
        "exports": size,
        "bytes": len(body),
        "seconds": times,
        "repeat": repeat,
        "number": number,
    }
    row["exports_per_second"] = {k: size / t for k, t in times.items()}
    row["ours_over_floor"] = times["ours"] / times["floor"]
    row["ours_over_floor_gc_off"] = times["ours"] / times["floor_gc_off"]
    row["naive_over_floor"] = times["naive"] / times["floor"]
    row["same_models"] = parse_export_list(body) == naive_parse(body)
    return row


def check_hostile(directory: Path = HOSTILE_DIR) -> dict[str, Any]:
    """Parse every ``*.xml`` there with our parser; each must raise `ProtocolError`."""
    if not directory.is_dir():
        return {"directory": str(directory), "skipped": "directory not found", "files": []}
    files = []
    for path in sorted(directory.glob("*.xml")):
        data = path.read_bytes()
        start = time.perf_counter()
        try:
            parse_export_list(data)
        except vdgexport.ProtocolError as exc:
            outcome, refused = f"ProtocolError: {exc}"[:90], True
        except Exception as exc:  # anything else is a finding to report
            outcome, refused = f"{type(exc).__name__}: {exc}"[:90], False
        else:
            outcome, refused = "accepted", False
        files.append(
            {
                "file": path.name,
                "refused": refused,
                "outcome": outcome,
                "seconds": time.perf_counter() - start,
            }
        )
    return {
        "directory": str(directory),
        "skipped": None,
        "files": files,
        "all_refused": all(f["refused"] for f in files),
    }


def run(sizes: list[int], repeat: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every parser on simulator bodies of each size; check the hostile documents."""
    rows = []
    for size in sizes:
        body = simulator_body(size)
        log(f"  parse: {size:,} exports ({len(body):,} bytes)")
        rows.append(_measure("simulator", body, size, repeat))
        if size == max(sizes) and size >= 100:
            log(f"  parse: {size:,} exports, distinct timestamps")
            rows.append(_measure("distinct-times", distinct_timestamps(body), size, repeat))
    return {"rows": rows, "hostile": check_hostile()}

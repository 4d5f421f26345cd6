"""Helpers shared by the benchmarks: simulator bodies, timing, the machine, tables."""

from __future__ import annotations

import gc
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpx

from vdgexport.testing import ManualClock, SenseSimulator

__all__ = ["best_of", "fmt_table", "machine", "simulator_body", "status_query"]

STATUS = {"command": "getExportVideoStatus"}


def status_query(export_id: str | None = None) -> dict[str, str]:
    """The query of ``getExportVideoStatus``, for one id or the whole list."""
    return STATUS if export_id is None else {**STATUS, "exportid": export_id}


def simulator_body(exports: int, *, devices: int = 4, seed: int = 0) -> bytes:
    """A whole-list answer of ``exports`` exports, rendered by the simulator itself.

    Statuses are mixed the way a busy server mixes them: most exports syncing at various
    progress, some pending, some completed, a few removed.
    """
    rng = random.Random(seed)
    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    for _ in range(exports):
        kind = rng.random()
        if kind < 0.15:  # pending for a long time
            sim.add_export(devices=devices, duration=600.0, pending=1e6)
        elif kind < 0.35:  # completed long ago
            sim.add_export(devices=devices, duration=[rng.uniform(10, 90) for _ in range(devices)])
        else:  # syncing, devices at different speeds
            sim.add_export(
                devices=devices,
                duration=[rng.uniform(200, 3000) for _ in range(devices)],
                pending=rng.uniform(0, 60),
            )
    clock.advance(123.456)
    for export_id in sim.export_ids()[::37]:
        sim.remove_export(export_id)
    return asgi_get(sim, status_query())


def asgi_get(sim: SenseSimulator, params: dict[str, str]) -> bytes:
    """One GET of ``/command`` answered by ``sim`` in-process (outside any event loop)."""

    async def get() -> bytes:
        transport = httpx.ASGITransport(app=sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            response = await http.get("/command", params=params)
            response.raise_for_status()
            return response.content

    return anyio.run(get)


def best_of(fn: Callable[[], object], *, repeat: int, number: int = 1) -> float:
    """Best time of ``repeat`` runs of ``number`` calls, per call (``time.perf_counter``).

    The collector is left as ``fn`` leaves it; a full collection runs before each repeat so
    garbage of one run does not land on the next.
    """
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / number


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def fmt_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (right-aligned numbers), readable in a terminal and in Markdown."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

"""Pacing (DESIGN §7): requests while subscribers join, and the burst after a restart.

Every request is stamped with ``time.perf_counter`` as it leaves the client, by a thin
wrapper of ``httpx.ASGITransport`` (the simulator in-process). The simulator's clock does
not move: nothing changes, and every request counted is one that joins or restarts caused.

- join one export: 40 subscribers of one export join over 1 s (one every 25 ms; 8 over
  0.2 s in ``--smoke``), each reading its first snapshot, with ``poll_interval``
  P = 0.2 s (``max_poll_interval`` 2 s); then the run goes on for P. Target: at most one
  request per P.
- join distinct exports: the same with 40 different exports.
- restart: 500 watched ids (20 in ``--smoke``), every one read, then a PluginManager
  restart (every id answers -57), until the last watch has ended. Target: at most 1 + 8
  requests in any window of P.

Baselines: for the joins, the naive way, one loop per subscriber (a GET by id at once,
then every P); for the restart, the previous behaviour, one whole-list request and then
a confirmation per missing id at once (8 in flight). Both beside ours in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import httpx

import vdgexport
from vdgexport.testing import SenseSimulator

from ._common import fmt_table, status_query

__all__ = ["run"]

POLL = 0.2
MAX_POLL = 2.0
CONFIRMATIONS = 8  # DESIGN §7: per tick


class Stamped(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` of the simulator that notes when each request is sent.

    Stamped as it leaves the client (``time.perf_counter``), so that the event loop's
    scheduling of the in-process server does not blur the pace.
    """

    def __init__(self, sim: SenseSimulator) -> None:
        self.sim = sim
        self.times: list[float] = []
        self._inner = httpx.ASGITransport(app=sim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.perf_counter())
        return await self._inner.handle_async_request(request)


def max_in_window(times: list[float], window: float) -> int:
    """The most requests in any half-open window ``[t, t + window)``."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _figures(times: list[float], t0: float, t1: float) -> dict[str, Any]:
    inside = [t for t in times if t0 <= t <= t1]
    return {
        "requests": len(inside),
        "seconds": t1 - t0,
        "requests_per_second": len(inside) / (t1 - t0) if t1 > t0 else None,
        "max_per_poll_interval": max_in_window(inside, POLL) if inside else 0,
    }


# -- joins ------------------------------------------------------------------------------


async def _join(
    ids: list[str], span: float, subscriber: Callable[[str], Coroutine[Any, Any, None]]
) -> tuple[float, float]:
    """Start ``subscriber(id)`` for each id, evenly over ``span``; run on for a poll."""
    async with anyio.create_task_group() as tasks:
        t0 = time.perf_counter()
        for n, export_id in enumerate(ids):
            await _sleep_until(t0 + n * span / len(ids))
            tasks.start_soon(subscriber, export_id)
        await _sleep_until(t0 + span + POLL)
        t1 = time.perf_counter()
        tasks.cancel_scope.cancel()
    return t0, t1


async def _join_ours(app: Stamped, ids: list[str], span: float) -> tuple[float, float]:
    async with vdgexport.Client(
        "http://sim", transport=app, poll_interval=POLL, max_poll_interval=MAX_POLL
    ) as client:

        async def subscriber(export_id: str) -> None:
            async with client.watch(export_id) as events:
                async for _ in events:
                    pass

        return await _join(ids, span, subscriber)


async def _join_naive(app: Stamped, ids: list[str], span: float) -> tuple[float, float]:
    async with httpx.AsyncClient(transport=app, base_url="http://sim") as http:

        async def subscriber(export_id: str) -> None:
            while True:  # what users write by hand: a loop per subscriber
                await http.get("/command", params=status_query(export_id))
                await anyio.sleep(POLL)

        return await _join(ids, span, subscriber)


def measure_joins(distinct: bool, impl: str, joins: int, span: float) -> dict[str, Any]:
    """``joins`` subscribers over ``span`` seconds, of one export or of as many."""
    sim = SenseSimulator()
    exports = [sim.add_export(duration=1000.0) for _ in range(joins if distinct else 1)]
    ids = exports if distinct else exports * joins
    app = Stamped(sim)
    drive = _join_ours if impl == "ours" else _join_naive
    t0, t1 = anyio.run(drive, app, ids, span)
    scenario = "join distinct exports" if distinct else "join one export"
    return {"scenario": scenario, "impl": impl, "joins": joins, **_figures(app.times, t0, t1)}


# -- restart ----------------------------------------------------------------------------


async def _restart_ours(app: Stamped, ids: list[str]) -> tuple[float, float]:
    async with vdgexport.Client(
        "http://sim",
        transport=app,
        poll_interval=POLL,
        max_poll_interval=MAX_POLL,
        timeout=60.0,
    ) as client:
        watches = [client.watch(export_id) for export_id in ids]
        for watch in watches:
            await watch.__aenter__()
        for watch in watches:
            await watch.__anext__()  # the first snapshot
        app.sim.restart()
        t0 = time.perf_counter()
        for watch in watches:
            async for _ in watch:  # ends with ExportVanished(NOT_FOUND)
                pass
        t1 = time.perf_counter()
    return t0, t1


async def _restart_previous(app: Stamped, ids: list[str]) -> tuple[float, float]:
    """One whole-list request, then every missing id confirmed at once (8 in flight)."""
    limiter = anyio.CapacityLimiter(CONFIRMATIONS)
    async with httpx.AsyncClient(transport=app, base_url="http://sim") as http:
        app.sim.restart()
        t0 = time.perf_counter()
        answer = (await http.get("/command", params=status_query())).text
        missing = [i for i in ids if f"<exportid>{i}</exportid>" not in answer]

        async def confirm(export_id: str) -> None:
            async with limiter:
                await http.get("/command", params=status_query(export_id))

        async with anyio.create_task_group() as tasks:
            for export_id in missing:
                tasks.start_soon(confirm, export_id)
        t1 = time.perf_counter()
    return t0, t1


def measure_restart(watched: int, impl: str) -> dict[str, Any]:
    """A restart under ``watched`` ids, each watched once and read."""
    sim = SenseSimulator()
    ids = [sim.add_export(duration=1000.0, devices=1) for _ in range(watched)]
    app = Stamped(sim)
    drive: Callable[[Stamped, list[str]], Awaitable[tuple[float, float]]]
    drive = _restart_ours if impl == "ours" else _restart_previous
    t0, t1 = anyio.run(drive, app, ids)
    after = [t for t in app.times if t >= t0]
    return {
        "scenario": f"restart under {watched} ids",
        "impl": impl,
        **_figures(after, t0, t1 + 1e-9),
    }


async def _sleep_until(moment: float) -> None:
    await anyio.sleep(max(0.0, moment - time.perf_counter()))


def run(
    *,
    joins: int = 40,
    span: float = 1.0,
    restart_ids: int = 500,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every scenario, ours beside its baseline; rows for the JSON file and the table."""
    rows = []
    for distinct in (False, True):
        for impl in ("ours", "naive"):
            log(f"  pacing: {joins} joins of {'distinct exports' if distinct else 'one'}, {impl}")
            rows.append(measure_joins(distinct, impl, joins, span))
    for impl in ("ours", "previous"):
        log(f"  pacing: restart under {restart_ids} ids, {impl}")
        rows.append(measure_restart(restart_ids, impl))
    return {"poll_interval": POLL, "confirmations_per_tick": CONFIRMATIONS, "rows": rows}


def table(pacing: dict[str, Any]) -> list[str]:
    """The pacing table, as Markdown-friendly lines."""
    head = ["scenario", "impl", "requests", "seconds", "req/s", "max per poll_interval"]
    rows = [
        [
            r["scenario"],
            r["impl"],
            r["requests"],
            r["seconds"],
            r["requests_per_second"],
            r["max_per_poll_interval"],
        ]
        for r in pacing["rows"]
    ]
    return [
        f"### Pacing (poll_interval {pacing['poll_interval']:g} s, in-process)",
        "",
        fmt_table(head, rows),
        "",
        "Requests as the simulator received them. Joins: ours is one `Client`; naive is a "
        "loop per subscriber. Restart: ours is one `Client` until every watch has ended; "
        "previous is the poller before DESIGN §7 (a list, then every missing id at once).",
    ]


def targets(pacing: dict[str, Any]) -> list[dict[str, Any]]:
    """DESIGN §7 targets: one request per poll_interval on joins, 1 + 8 after a restart."""
    out = []
    for row in (r for r in pacing["rows"] if r["impl"] == "ours"):
        restart = row["scenario"].startswith("restart")
        limit = 1 + pacing["confirmations_per_tick"] if restart else 1
        out.append(
            {
                "target": f"{row['scenario']}: at most {limit} request(s) per poll_interval",
                "measured": f"max {row['max_per_poll_interval']} "
                f"({row['requests']} in {row['seconds']:.1f} s)",
                "verdict": "PASS" if row["max_per_poll_interval"] <= limit else "MISS",
            }
        )
    return out

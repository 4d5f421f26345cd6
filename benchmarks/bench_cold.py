"""Cold parses and the event loop (issue 14): what a list costs when nothing can be reused.

- cold: the whole list with *every* export changed since the previous answer, so that no
  model can be reused, parsed by our `ListParser.parse_async` (the slicing and its
  checkpoints included, inside a running event loop) beside the fair floor, the C parser
  building the bare tree with the collector paused (``ET.fromstring`` with ``gc.disable()``),
  in interleaved rounds on the same bytes. Two bodies: the simulator's (every export's
  bandwidth changes between the two answers that alternate; the timestamp cache is warm as
  it is in a watch) and one with a distinct time span per device, parsed by a fresh parser
  with empty caches (nothing at all can be reused). The headline is the median of the
  per-round ratios.
- warm: the same list with 1% of its exports changed (a watch's ordinary tick).
- loop: the largest block of the event loop, seen by a heartbeat task sleeping 2 ms at a
  time, while a cold answer at the 16 MiB cap is fetched (``httpx.MockTransport``: no network
  in the figure) and parsed: by `Client.list_exports`, by a watch's first tick, and, beside
  them, by the one-shot parse (`parse_export_list` called in the loop, as before slicing).
"""

from __future__ import annotations

import gc
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree import ElementTree

import anyio
import httpx

import vdgexport
from vdgexport import _build
from vdgexport._incremental import ListParser
from vdgexport._parse import parse_export_list

from ._common import simulator_body
from .bench_parse import distinct_timestamps

__all__ = ["changed", "run"]

_BANDWIDTH = re.compile(rb"</bandwidth>")


def changed(body: bytes, tag: bytes, every: int = 1) -> bytes:
    """``body`` with every ``every``-th export's bandwidth changed (a digit ``tag`` added)."""
    counter = iter(range(10**9))

    def one(match: re.Match[bytes]) -> bytes:
        return tag + match.group(0) if next(counter) % every == 0 else match.group(0)

    return _BANDWIDTH.sub(one, body)


def _floor(body: bytes) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        ElementTree.fromstring(body)
        return time.perf_counter() - start
    finally:
        gc.enable()


def _clear_caches() -> None:
    _build._TIMESTAMPS.clear()
    _build._STRINGS.clear()
    _build._STRINGS.update((s.value, s.value) for s in vdgexport.ExportStatus)


async def _cold_rounds(base: bytes, size: int, repeat: int) -> list[dict[str, Any]]:
    alternating = [changed(base, b"1"), changed(base, b"2")]
    distinct = distinct_timestamps(base)
    parser = ListParser()
    parser.parse(alternating[1])
    rows = []
    for name, bodies, fresh in (
        ("all exports changed", alternating, False),
        ("distinct times, empty caches", [distinct], True),
    ):
        floors, ours, syncs = [], [], []
        for n in range(repeat):
            body = bodies[n % len(bodies)]
            floors.append(_floor(body))
            for times, sync in ((ours, False), (syncs, True)):
                if fresh:
                    _clear_caches()
                    parser = ListParser()
                else:  # the previous answer is the other one: every export changed
                    parser.parse(bodies[(n + 1) % len(bodies)])
                gc.collect()
                start = time.perf_counter()
                if sync:
                    parser.parse(body)
                else:
                    await parser.parse_async(body)
                times.append(time.perf_counter() - start)
        rows.append(
            {
                "body": name,
                "exports": size,
                "bytes": len(bodies[0]),
                "floor_gc_off_ms": min(floors) * 1e3,
                "ours_ms": min(ours) * 1e3,
                "ours_sync_ms": min(syncs) * 1e3,
                "ratio_median": statistics.median(o / f for o, f in zip(ours, floors, strict=True)),
                "ratio_best": min(ours) / min(floors),
                "sync_ratio_median": statistics.median(
                    s / f for s, f in zip(syncs, floors, strict=True)
                ),
                "rounds": repeat,
            }
        )
    return rows


def warm_tick(base: bytes, repeat: int, parse_class: type = ListParser) -> dict[str, Any]:
    """Time of one tick whose answer has 1% of its exports changed (the previous one held)."""
    bodies = [changed(base, b"1", every=100), changed(base, b"2", every=100)]
    parser = parse_class()
    parser.parse(bodies[1])
    times = []
    for n in range(repeat * 5):
        gc.collect()
        start = time.perf_counter()
        parser.parse(bodies[n % 2])
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    return {"bytes": len(base), "ms_best": best * 1e3, "ms_median": median * 1e3}


async def _largest_block(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """The longest the loop was held while ``call`` ran (the heartbeat's worst lateness),
    and the longest pass of the cyclic garbage collector meanwhile."""
    gaps: list[float] = []
    done = anyio.Event()
    passes: list[float] = []
    started = [0.0]

    def collector(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            passes.append(time.perf_counter() - started[0])

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last - 0.002)
            last = now

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(heartbeat)
        await anyio.sleep(0.02)
        gaps.clear()
        gc.callbacks.append(collector)
        try:
            await call()
        finally:
            gc.callbacks.remove(collector)
        done.set()
    return max(gaps, default=0.0), max(passes, default=0.0)


async def _loop_blocks(body: bytes, size: int, repeat: int) -> dict[str, Any]:
    ids = [m.decode() for m in re.findall(rb"<exportid>([^<]*)</exportid>", body)[:2]]

    def client() -> vdgexport.Client:
        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=body, headers={"content-type": "text/xml"})

        return vdgexport.Client("http://vdg.test", transport=httpx.MockTransport(answer))

    async def one_shot(c: vdgexport.Client) -> None:
        await c.list_exports()

    async def watch(c: vdgexport.Client) -> None:
        async with c.watch(ids[0]) as one, c.watch(ids[1]) as two:
            await one.__anext__()
            await two.__anext__()

    async def parse_in_loop(c: vdgexport.Client) -> None:
        parse_export_list(body)

    calls = {"list_exports": one_shot, "watch, first tick": watch}
    calls["one-shot parse (parse_export_list)"] = parse_in_loop
    worst: dict[str, list[float]] = {name: [] for name in calls}
    collector: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            _clear_caches()
            async with client() as c:  # made and entered before the heartbeat starts
                gc.collect()
                block, pause = await _largest_block(lambda: call(c))  # noqa: B023
                worst[name].append(block)
                collector[name].append(pause)
    steps = _largest_step(body)
    return {
        "bytes": len(body),
        "exports": size,
        "rounds": repeat,
        "largest_block_ms": {k: max(v) * 1e3 for k, v in worst.items()},
        "median_block_ms": {k: statistics.median(v) * 1e3 for k, v in worst.items()},
        "largest_collector_pass_ms": {k: max(v) * 1e3 for k, v in collector.items()},
        "largest_parse_step_ms": steps * 1e3,
    }


def _largest_step(body: bytes) -> float:
    """The longest step of `ListParser.parse_async` (what runs between two checkpoints)."""
    _clear_caches()
    gc.collect()
    steps = ListParser()._steps(body)
    longest = 0.0
    while True:
        start = time.perf_counter()
        try:
            next(steps)
        except StopIteration:
            return max(longest, time.perf_counter() - start)
        longest = max(longest, time.perf_counter() - start)


def run(
    cold_size: int, loop_size: int, repeat: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Cold parse ratios, the warm tick and the largest loop blocks, in one run."""
    log(f"  cold: {cold_size:,} exports, every export changed, {repeat} interleaved rounds")
    base = simulator_body(cold_size)
    cold = anyio.run(_cold_rounds, base, cold_size, repeat)
    log(f"  warm: {cold_size:,} exports, 1% changed")
    warm = {"exports": cold_size, **warm_tick(base, repeat)}
    log(f"  loop: {loop_size:,} exports (a cold answer near the 16 MiB cap), heartbeat 2 ms")
    body = distinct_timestamps(simulator_body(loop_size))
    loop = anyio.run(_loop_blocks, body, loop_size, max(2, repeat // 2))
    return {"cold": cold, "warm": warm, "loop": loop}

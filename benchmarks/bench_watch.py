"""K watches on one `vdgexport.Client` beside the naive baseline, in-process and over loopback.

Setup per K: a `SenseSimulator` on a `ManualClock` holds K exports of 4 devices each:
every tenth one (and the only one at K = 1) *moves* — the benchmark advances the clock by
1 s of simulator time once per poll interval of real time on average (a random walk of
steps of 0.5 to 1.5 poll intervals, so that its phase drifts against the poller), and each
such step moves every device of a moving export by 0.1 % — while the others sit still,
half of them SYNCING but paused, half PENDING.

- ours: one `Client(poll_interval=P, max_poll_interval=P)`, one consumer task per watch
  (``async with client.watch(id)``, ``async for``);
- naive: one task per export, ``GET /command?command=getExportVideoStatus&exportid=ID``
  with one shared ``httpx.AsyncClient``, ``xml.etree.ElementTree.fromstring``, a compare
  with the previous answer, ``sleep(P)``: what users write by hand.

A *round* is one poll of every watched export: for ours one whole-list request (one per-id
request at K = 1), plus any confirmations; for the baseline K requests. Measured per K:

- requests per round, from the simulator's own log (``sim.requests``);
- CPU seconds per round: ``time.process_time`` over the active phase (the clock moves) and
  over an idle phase (nothing changes), divided by the rounds completed in it. It is the
  whole process: the client, the consumers and the simulator (in-process), and for the
  loopback variant also the uvicorn server, which runs in a thread of this process;
- latency: from the moment the clock is advanced to the moment a consumer holds the
  `DeviceProgress` that shows it (p50, p99 over every device event of the active phase);
- memory per idle watch (in-process, separate run under ``tracemalloc``): traced memory
  with K watches open and idle, minus the memory before them (simulator and its exports
  already built and rendered; its request log cleared), divided by K. The client gets its
  own copy of each body, as it would over a network.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import anyio
import httpx
import uvicorn

import vdgexport
from vdgexport import DeviceProgress
from vdgexport.testing import ManualClock, SenseSimulator

from ._common import status_query

__all__ = ["Settings", "run"]

DEVICES = 4
MOVING_EVERY = 10  # one export in ten moves
STEP = 1.0  # simulator seconds per clock advance: 0.1 % per device of a moving export
_T0 = 100.0  # simulator time at which the moving exports start


@dataclass
class Settings:
    """Sizes and durations of one benchmark run."""

    ks: list[int]
    poll: float  # poll_interval = max_poll_interval, seconds
    active_ticks: int
    idle_ticks: int
    min_rounds: int = 2  # the naive baseline is measured over at least this many rounds
    max_phase_seconds: float = 60.0
    transports: tuple[str, ...] = ("asgi", "http")
    memory: bool = True
    naive_max_k: int = 10_000
    #: The naive baseline over loopback is run up to this K: with 1,000 tasks sharing one
    #: httpx pool against a server in a thread of the same process, one round took ~44 s.
    naive_http_max_k: int = 100


# -- the simulator ----------------------------------------------------------------------


@dataclass
class World:
    """A simulator with K exports, and which of them move."""

    sim: SenseSimulator
    clock: ManualClock
    ids: list[str]
    moving: set[str]

    @classmethod
    def build(cls, k: int) -> World:
        clock = ManualClock()
        sim = SenseSimulator(clock=clock)
        ids = [str(n) for n in range(1, k + 1)]
        moving = {i for n, i in enumerate(ids) if n % MOVING_EVERY == 0}
        still = [i for i in ids if i not in moving]
        paused = still[::2]
        for export_id in still:
            pending = 0.0 if export_id in paused[:] else 1e9
            sim.add_export(
                export_id=export_id,
                devices=DEVICES,
                duration=[300.0, 600.0, 900.0, 1200.0],
                pending=pending,
            )
        clock.advance(_T0)
        for export_id in paused:
            sim.pause(export_id)
        for export_id in moving:
            sim.add_export(export_id=export_id, devices=DEVICES, duration=1000.0)
        return cls(sim, clock, ids, moving)


class Advances:
    """When each clock step happened, to turn a progress value into a latency."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.last = -1
        self.at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.recording = False
        self.expected = 0  # device events showing the last step, once it is taken
        self.final = anyio.Event()

    def finish(self, devices: int) -> None:
        """Wait for ``devices`` device events that show the last step taken."""
        self.expected = devices
        self.last = round((self.clock() - _T0) / STEP)
        if devices == 0:
            self.final.set()

    def step(self) -> None:
        self.clock.advance(STEP)
        self.at[round((self.clock() - _T0) / STEP)] = time.perf_counter()

    def seen(self, progress: float) -> None:
        if self.recording:
            index = round(progress * 10)
            moment = self.at.get(index)
            if moment is not None:
                self.latencies.append(time.perf_counter() - moment)
            if self.expected and index == self.last:
                self.expected -= 1
                if not self.expected:
                    self.final.set()


# -- loopback HTTP ----------------------------------------------------------------------


class _ThreadServer(uvicorn.Server):
    """uvicorn that says when it is listening (no sleep-polling for the port)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class Loopback:
    """The simulator served by uvicorn on 127.0.0.1 (port 0) in a thread of this process."""

    def __init__(self, sim: SenseSimulator) -> None:
        config = uvicorn.Config(
            sim, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self.server = _ThreadServer(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        if not self.server.ready.wait(30) or not self.server.started:
            raise RuntimeError("uvicorn did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


# -- the two implementations ------------------------------------------------------------


@dataclass
class Harness:
    """What a phase driver needs from either implementation."""

    rounds: Callable[[], float]  # rounds completed so far (from the simulator's log)
    initial: anyio.Event = field(default_factory=anyio.Event)
    errors: int = 0


def _list_rounds(world: World) -> Callable[[], float]:
    k = len(world.ids)
    if k == 1:
        return lambda: float(len(world.sim.requests))
    requests = world.sim.requests
    seen = [0, 0]  # log entries counted, whole-list requests among them

    def count() -> float:
        for request in requests[seen[0] :]:
            seen[1] += "exportid" not in request.query
        seen[0] = len(requests)
        return float(seen[1])

    return count


async def _ours(
    world: World,
    advances: Advances,
    settings: Settings,
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
    phases: Callable[[Harness], Awaitable[None]],
) -> None:
    harness = Harness(_list_rounds(world))
    k, ready = len(world.ids), [0]

    async def consume(watch: vdgexport.Watch, moving: bool) -> None:
        async with watch:
            n = 0
            async for event in watch:
                n += 1
                if n == 1 + DEVICES:
                    ready[0] += 1
                    if ready[0] == k:
                        harness.initial.set()
                elif moving and isinstance(event, DeviceProgress) and n > 1 + DEVICES:
                    advances.seen(event.progress)

    async with (
        vdgexport.Client(
            base_url,
            transport=transport,
            poll_interval=settings.poll,
            max_poll_interval=settings.poll,
            outage_timeout=None,
            timeout=60.0,
        ) as client,
        anyio.create_task_group() as tasks,
    ):
        for export_id in world.ids:
            tasks.start_soon(consume, client.watch(export_id), export_id in world.moving)
        await phases(harness)
        tasks.cancel_scope.cancel()


async def _naive(
    world: World,
    advances: Advances,
    settings: Settings,
    base_url: str,
    transport: httpx.AsyncBaseTransport | None,
    phases: Callable[[Harness], Awaitable[None]],
) -> None:
    k = len(world.ids)
    harness = Harness(lambda: len(world.sim.requests) / k)
    ready = [0]

    async def poll(http: httpx.AsyncClient, export_id: str, moving: bool) -> None:
        previous: dict[str, tuple[str | None, str | None]] | None = None
        while True:
            try:
                response = await http.get("/command", params=status_query(export_id))
                export = ElementTree.fromstring(response.content).find("exports/export")
            except (httpx.HTTPError, ElementTree.ParseError):
                harness.errors += 1
                await anyio.sleep(settings.poll)
                continue
            assert export is not None
            status = export.findtext("status")
            devices = {
                d.findtext("deviceid") or "": (d.findtext("progress"), d.findtext("status"))
                for d in export.iterfind("devices/device")
            }
            if previous is None:
                ready[0] += 1
                if ready[0] == k:
                    harness.initial.set()
            elif moving:
                for device, now in devices.items():
                    if now != previous.get(device) and now[0] is not None:
                        advances.seen(float(now[0]))
            previous = devices
            del status
            await anyio.sleep(settings.poll)

    async with (
        httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60.0) as http,
        anyio.create_task_group() as tasks,
    ):
        for export_id in world.ids:
            tasks.start_soon(poll, http, export_id, export_id in world.moving)
        await phases(harness)
        tasks.cancel_scope.cancel()


IMPLEMENTATIONS = {"ours": _ours, "naive": _naive}


# -- phases -----------------------------------------------------------------------------


async def _phase(
    world: World,
    advances: Advances,
    harness: Harness,
    settings: Settings,
    *,
    active: bool,
    rng: random.Random,
) -> dict[str, Any]:
    """Advance (or not) once per poll interval; measure requests, rounds and CPU."""
    ticks = settings.active_ticks if active else settings.idle_ticks
    requests0, rounds0 = len(world.sim.requests), harness.rounds()
    cpu0, start = time.process_time(), time.perf_counter()
    advances.recording = active
    n, moment = 0, start
    while True:
        n += 1
        done = n > ticks and harness.rounds() - rounds0 >= settings.min_rounds
        if done or time.perf_counter() - start > settings.max_phase_seconds:
            break
        # A random walk of mean poll_interval: the phase of the steps drifts against a
        # poller that ticks exactly every poll_interval, as real changes do; a jitter
        # around a fixed grid would lock the two and make the latency depend on the phase.
        moment += rng.uniform(0.5, 1.5) * settings.poll
        await _sleep_until(moment)
        if active:
            advances.step()
    if active:  # the window closes when the last step has reached every consumer
        advances.finish(len(world.moving) * DEVICES)
        with anyio.move_on_after(settings.max_phase_seconds):
            await advances.final.wait()
    advances.recording = False
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - start
    rounds = harness.rounds() - rounds0
    requests = len(world.sim.requests) - requests0
    return {
        "wall_seconds": wall,
        "rounds": rounds,
        "requests": requests,
        "requests_per_round": requests / rounds if rounds else None,
        "cpu_seconds": cpu,
        "cpu_per_round": cpu / rounds if rounds else None,
        "seconds_per_round": wall / rounds if rounds else None,
    }


async def _sleep_until(moment: float) -> None:
    await anyio.sleep(max(0.0, moment - time.perf_counter()))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure_speed(k: int, impl: str, transport: str, settings: Settings) -> dict[str, Any]:
    """One scenario: K watches, one implementation, one transport."""
    world = World.build(k)
    advances = Advances(world.clock)
    result: dict[str, Any] = {"k": k, "impl": impl, "transport": transport}
    rng = random.Random(k)

    async def phases(harness: Harness) -> None:
        with anyio.fail_after(settings.max_phase_seconds * 2):
            await harness.initial.wait()
        await _sleep_until(time.perf_counter() + settings.poll)  # settle
        result["active"] = await _phase(world, advances, harness, settings, active=True, rng=rng)
        result["idle"] = await _phase(world, advances, harness, settings, active=False, rng=rng)
        result["errors"] = harness.errors

    async def main() -> None:
        if transport == "asgi":
            await IMPLEMENTATIONS[impl](
                world, advances, settings, "http://sim", httpx.ASGITransport(app=world.sim), phases
            )
        else:
            with Loopback(world.sim) as base_url:
                await IMPLEMENTATIONS[impl](world, advances, settings, base_url, None, phases)

    gc.collect()
    anyio.run(main)
    lat = advances.latencies
    result["latency"] = {
        "events": len(lat),
        "p50": _percentile(lat, 0.50),
        "p99": _percentile(lat, 0.99),
        "mean": statistics.fmean(lat) if lat else None,
    }
    return result


# -- memory -----------------------------------------------------------------------------


class _CopyingTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` handing the client its own copy of each body.

    In-process, a body sent in one piece reaches the client as the simulator's own cached
    object; over a network the client holds a copy, and that copy is the client's memory.
    """

    def __init__(self, sim: SenseSimulator) -> None:
        self._inner = httpx.ASGITransport(app=sim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = bytes(bytearray(await response.aread()))
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def measure_memory(k: int, impl: str, settings: Settings) -> dict[str, Any]:
    """Traced memory per idle watch (in-process), the simulator's own memory excluded."""
    world = World.build(k)
    out: dict[str, Any] = {"k": k, "impl": impl}

    async def main() -> None:
        transport = httpx.ASGITransport(app=world.sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            await http.get("/command", params=status_query())  # the simulator renders all
            if k == 1:
                await http.get("/command", params=status_query(world.ids[0]))
        world.sim.requests.clear()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        if impl == "ours":
            await _ours_idle(world, settings, base, out)
        else:
            await _naive_idle(world, settings, base, out)

    tracemalloc.start()
    try:
        anyio.run(main)
    finally:
        tracemalloc.stop()
    return out


def _snapshot(world: World, base: int, k: int) -> tuple[float, float]:
    world.sim.requests.clear()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    return (current - base) / k, (peak - base) / k


async def _ours_idle(world: World, settings: Settings, base: int, out: dict[str, Any]) -> None:
    k = len(world.ids)
    async with vdgexport.Client(
        "http://sim",
        transport=_CopyingTransport(world.sim),
        poll_interval=settings.poll,
        max_poll_interval=settings.poll,
        timeout=120.0,
    ) as client:
        watches = [client.watch(export_id) for export_id in world.ids]
        for watch in watches:
            await watch.__aenter__()
        for watch in watches:  # the first events: one status and one per device
            for _ in range(1 + DEVICES):
                await watch.__anext__()
        await anyio.sleep(2 * settings.poll)  # idle ticks
        out["bytes_per_watch"], out["peak_bytes_per_watch"] = _snapshot(world, base, k)

        async def consume(watch: vdgexport.Watch) -> None:
            async with watch:  # as a service would: inside `async with`, waiting
                async for _ in watch:
                    pass

        async with anyio.create_task_group() as tasks:
            for watch in watches:
                tasks.start_soon(consume, watch)
            await anyio.sleep(2 * settings.poll)
            out["bytes_per_watch_with_consumer_task"], _ = _snapshot(world, base, k)
            tasks.cancel_scope.cancel()
        for watch in watches:
            await watch.aclose()
    out["bytes_per_bare_task"] = await _bare_tasks(world, k)
    out["bytes_per_watch_beyond_bare_task"] = (
        out["bytes_per_watch_with_consumer_task"] - out["bytes_per_bare_task"]
    )


async def _bare_tasks(world: World, k: int) -> float:
    """What K tasks sleeping in one task group cost each: the fair floor of a consumer."""
    world.sim.requests.clear()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    async with anyio.create_task_group() as tasks:
        for _ in range(k):
            tasks.start_soon(anyio.sleep, 3600.0)
        await anyio.wait_all_tasks_blocked()
        per_task, _ = _snapshot(world, before, k)
        tasks.cancel_scope.cancel()
    return per_task


async def _naive_idle(world: World, settings: Settings, base: int, out: dict[str, Any]) -> None:
    k = len(world.ids)
    advances = Advances(world.clock)

    async def phases(harness: Harness) -> None:
        await harness.initial.wait()
        out["bytes_per_watch"], out["peak_bytes_per_watch"] = _snapshot(world, base, k)
        out["bytes_per_watch_with_consumer_task"] = out["bytes_per_watch"]
        out["bytes_per_bare_task"] = None
        out["bytes_per_watch_beyond_bare_task"] = None

    await _naive(world, advances, settings, "http://sim", _CopyingTransport(world.sim), phases)


# -- the whole benchmark ----------------------------------------------------------------


def run(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every scenario of ``settings``; returns rows for the JSON file and the table."""
    speed: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for k in settings.ks:
        for transport in settings.transports:
            for impl in ("ours", "naive"):
                limit = settings.naive_http_max_k if transport == "http" else settings.naive_max_k
                if impl == "naive" and k > limit:
                    continue
                log(f"  watch: K={k:,} {impl} over {transport}")
                started = time.perf_counter()
                try:
                    row = measure_speed(k, impl, transport, settings)
                except Exception as exc:  # report it, go on with the other scenarios
                    log(f"    failed: {exc!r}")
                    failures.append(
                        {"k": k, "impl": impl, "transport": transport, "error": repr(exc)}
                    )
                    continue
                row["scenario_seconds"] = time.perf_counter() - started
                speed.append(row)
        if settings.memory:
            for impl in ("ours", "naive"):
                if impl == "naive" and k > settings.naive_max_k:
                    continue
                log(f"  watch: K={k:,} {impl} memory")
                memory.append(measure_memory(k, impl, settings))
    return {
        "settings": settings.__dict__ | {"transports": list(settings.transports)},
        "speed": speed,
        "memory": memory,
        "failures": failures,
    }

"""Requests to the VDG server per tick with N SSE subscribers: the relay beside one poller each.

Setup per N: a `SenseSimulator` on a `ManualClock` with 4 exports of 4 devices; the clock
moves by 1 s of simulator time (0.1 %) once per poll interval of real time: every tick
has news.

- relay: `vdgexport.web.create_app` over one `Client(poll_interval=P, max_poll_interval=P)`,
  served by uvicorn on 127.0.0.1 in a thread of this process; N subscribers (httpx, real
  loopback HTTP) read ``/api/exports/{id}/events``, spread over the 4 exports;
- relay /api/events: the same relay, the N subscribers reading ``/api/events`` (every
  export; the relay finds them in its poller's own list, `Client.watch_list`);
- naive: what each process did before the relay: N subscribers, each with its own `Client`
  watching its export (in-process, `httpx.ASGITransport`).

After every subscriber has its first event, requests are counted at the simulator over a
window of W seconds; a *tick* is one poll interval, so requests per tick is the count over
W / P. Events read by the subscribers in the window are reported too.

From Redis (``serve --redis``; skipped where ``redis-server`` is not installed): the
simulator served by uvicorn on loopback (in this process, so that its clock moves as
above); one ``vdgexport publish --interval P`` process writes to a real redis-server on a
free loopback port; R ``vdgexport serve --redis`` processes each have S subscribers (httpx,
in this process) reading ``/api/exports/{id}/events``; beside it the naive setup of R x S
subscribers, each with its own `Client`. The ratio is naive requests per tick over ours.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import vdgexport
import vdgexport.fleet
from vdgexport.testing import ManualClock, SenseSimulator
from vdgexport.web import create_app

from ._common import fmt_table
from .bench_watch import _ThreadServer

__all__ = ["Settings", "run"]

EXPORTS = 4


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    subscribers: list[int]
    poll: float
    window: float
    fleet_relays: list[int] = field(default_factory=lambda: [1, 3])
    fleet_subscribers: int = 50


def _setup() -> tuple[SenseSimulator, ManualClock, list[str]]:
    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    ids = [sim.add_export(devices=4, duration=1_000.0) for _ in range(EXPORTS)]
    return sim, clock, ids


class _Stamped:
    """In front of the simulator: the real time each request reached it."""

    def __init__(self, sim: SenseSimulator) -> None:
        self.sim = sim
        self.at: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.at.append(time.perf_counter())
        await self.sim(scope, receive, send)


def _extra(at: list[float], poll: float) -> int:
    """Requests less than half a poll interval after the one before: beside a tick."""
    return sum(b - a < poll / 2 for a, b in itertools.pairwise(at))


def _client_app(sim: Any, poll: float) -> Starlette:
    """The relay of ``sim``; its lifespan owns the client."""
    transport = httpx.ASGITransport(app=sim)
    client = vdgexport.Client(
        "http://sim", transport=transport, poll_interval=poll, max_poll_interval=poll
    )
    return _owning(client, create_app(client))


def _owning(source: Any, app: Any) -> Starlette:
    """``app`` mounted at ``/`` in an app whose lifespan enters ``source``."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with source:
            yield

    return Starlette(lifespan=lifespan, routes=[Mount("/", app=app)])


class _Relay:
    """``app`` served on loopback by uvicorn in a thread of its own."""

    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
        )
        self.server = _ThreadServer(config)
        self.thread = threading.Thread(target=self.server.run, name="relay", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        if not self.server.ready.wait(30) or not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def _measure(
    n: int,
    settings: Settings,
    sim: SenseSimulator,
    clock: ManualClock,
    subscribe: Callable[[int, Callable[[], None]], Any],
    stamped: _Stamped | None = None,
) -> dict[str, Any]:
    """Start ``n`` subscribers; once each has an event, count requests over the window."""
    events = 0
    started: set[int] = set()
    all_in = anyio.Event()

    def on_event(index: int) -> Callable[[], None]:
        def seen() -> None:
            nonlocal events
            events += 1
            started.add(index)
            if len(started) == n:
                all_in.set()

        return seen

    async with anyio.create_task_group() as tasks:
        for index in range(n):
            tasks.start_soon(subscribe, index, on_event(index))
        with anyio.fail_after(60):
            while not all_in.is_set():  # news while they join too: no pace stretches
                clock.advance(1.0)
                with anyio.move_on_after(settings.poll):
                    await all_in.wait()
        before, counted, t0 = sim.request_count, events, time.perf_counter()
        while time.perf_counter() - t0 < settings.window:
            clock.advance(1.0)
            await anyio.sleep(settings.poll)
        elapsed = time.perf_counter() - t0
        requests = sim.request_count - before
        tasks.cancel_scope.cancel()
    ticks = elapsed / settings.poll
    window = [] if stamped is None else [a for a in stamped.at if t0 <= a <= t0 + elapsed]
    return {
        "subscribers": n,
        "requests": requests,
        "ticks": ticks,
        "requests_per_tick": requests / ticks,
        "extra_requests": None if stamped is None else _extra(window, settings.poll),
        "events_per_second": (events - counted) / elapsed,
    }


async def _relay_row(n: int, settings: Settings, every: bool = False) -> dict[str, Any]:
    """N subscribers of one export each, or (``every``) of ``/api/events``."""
    sim, clock, ids = _setup()
    stamped = _Stamped(sim)
    with _Relay(_client_app(stamped, settings.poll)) as url:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

            async def subscribe(index: int, seen: Callable[[], None]) -> None:
                path = "/api/events" if every else f"/api/exports/{ids[index % EXPORTS]}/events"
                await _read_events(http, path, seen)

            row = await _measure(n, settings, sim, clock, subscribe, stamped)
    return {"impl": "relay /api/events" if every else "relay", **row}


async def _events_row(n: int, settings: Settings) -> dict[str, Any]:
    return await _relay_row(n, settings, every=True)


async def _naive_row(n: int, settings: Settings) -> dict[str, Any]:
    sim, clock, ids = _setup()

    async def subscribe(index: int, seen: Callable[[], None]) -> None:
        async with (
            vdgexport.Client(
                "http://sim",
                transport=httpx.ASGITransport(app=sim),
                poll_interval=settings.poll,
                max_poll_interval=settings.poll,
            ) as client,
            client.watch(ids[index % EXPORTS]) as watch,
        ):
            async for _ in watch:
                seen()

    return {"impl": "naive", **await _measure(n, settings, sim, clock, subscribe)}


async def _read_events(http: httpx.AsyncClient, url: str, seen: Callable[[], None]) -> None:
    """Call ``seen`` for each event of the stream at ``url``."""
    async with http.stream("GET", url) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                seen()


async def _moving(clock: ManualClock, poll: float) -> None:
    """Move the simulator's clock once per poll interval, until cancelled."""
    while True:
        clock.advance(1.0)
        await anyio.sleep(poll)


async def _fleet_row(relays: int, settings: Settings) -> dict[str, Any]:
    """R relay processes from Redis, S subscribers each, one publisher process polling."""
    from tests._fleet import PublisherProcess
    from tests._redis import RedisServer
    from tests._relay import relay_process
    from tests._servers import serve

    sim, clock, ids = _setup()
    redis = RedisServer()
    redis.start()
    try:
        with serve(sim) as vdg_url, contextlib.ExitStack() as stack:
            publisher = PublisherProcess(
                vdg_url, redis.url, user="bench", lease=5.0, interval=settings.poll
            )
            stack.callback(publisher.close)
            async with anyio.create_task_group() as setup:
                setup.start_soon(_moving, clock, settings.poll)  # the leader's pace stays P
                await publisher.says("leading", within=60)
                for export_id in ids:  # wait for the fleet to know every export
                    async with vdgexport.fleet.subscribe(
                        redis.url, name="site", export_id=export_id
                    ) as known:
                        with anyio.fail_after(60):
                            await known.__anext__()
                args = ("--redis", redis.url, "--name", "site")
                urls = [stack.enter_context(relay_process(*args))[1] for _ in range(relays)]
                setup.cancel_scope.cancel()
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            async with httpx.AsyncClient(timeout=30, limits=limits) as http:

                async def subscribe(index: int, seen: Callable[[], None]) -> None:
                    url = f"{urls[index % relays]}api/exports/{ids[index % EXPORTS]}/events"
                    await _read_events(http, url, seen)

                n = relays * settings.fleet_subscribers
                row = await _measure(n, settings, sim, clock, subscribe)
    finally:
        redis.stop()
    return {"impl": "fleet", "relays": relays, **row}


def fleet_run(settings: Settings, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Rows of the relays served from Redis beside the naive; none without redis-server."""
    from tests._redis import REDIS_SERVER

    if REDIS_SERVER is None:
        log("  relay from Redis: redis-server is not installed; skipped")
        return []
    rows = []
    for relays in settings.fleet_relays:
        n = relays * settings.fleet_subscribers
        log(f"  relay from Redis: {relays} relays x {settings.fleet_subscribers} subscribers")
        ours = anyio.run(_fleet_row, relays, settings)
        log(f"  relay from Redis: {n} subscribers, naive")
        naive = {**anyio.run(_naive_row, n, settings), "relays": relays}
        ours["ratio"] = naive["requests_per_tick"] / max(ours["requests_per_tick"], 1e-9)
        rows += [ours, naive]
    return rows


def fleet_table(rows: list[dict[str, Any]]) -> list[str]:
    """The lines of the report on the relays served from Redis."""
    if not rows:
        return ["relay from Redis: skipped (no redis-server)"]
    cells = [
        [
            r["relays"],
            r["subscribers"],
            r["impl"],
            r["requests"],
            r["ticks"],
            r["requests_per_tick"],
            r.get("ratio", ""),
            r["events_per_second"],
        ]
        for r in rows
    ]
    head = ["relays", "SSE subscribers", "impl", "requests", "ticks", "req/tick", "naive/ours"]
    head.append("events/s")
    return [
        "### Relays from Redis (`serve --redis`): VDG requests per tick",
        "",
        fmt_table(head, cells),
        "",
        "fleet: one publisher (one Client) polls, R relays serve from Redis; naive: every "
        "subscriber with a Client of its own.",
    ]


def run(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every N of ``settings``, relay and naive; rows for the JSON file and the table."""
    rows = []
    for n in settings.subscribers:
        for impl, measure in (
            ("relay", _relay_row),
            ("relay /api/events", _events_row),
            ("naive", _naive_row),
        ):
            log(f"  relay: {n} subscribers, {impl}")
            rows.append(anyio.run(measure, n, settings))
    return {"settings": vars(settings), "rows": rows, "fleet": fleet_run(settings, log)}

"""``vdgexport demo``: the simulator in-process, watched through the public API."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
from rich.console import Console

from vdgexport import Client, ConnectionLost, DeviceSpan, WatchEvent
from vdgexport.testing import SenseSimulator

from .common import EXIT_OK, is_terminal, make_console
from .connect import run_watches
from .options import Options, positive
from .views import Board, View, make_view

__all__ = ["DEMO_EXPORTS", "Stage", "register", "run", "run_demo"]


@dataclass(frozen=True)
class DemoExport:
    """One export of the demo; durations and ``pending`` are in simulated seconds."""

    path: str
    durations: tuple[float, ...]
    bandwidth_kbps: float = 8000.0
    pending: float = 0.0
    fate: str = "completes"  # or "removed" / "vanishes"


DEMO_EXPORTS = (
    DemoExport("D:\\Exports\\lobby", (30,), 4000),
    DemoExport("D:\\Exports\\parking", (40, 60, 80), 16000),
    DemoExport("D:\\Exports\\loading-dock", (50, 50), 8000, pending=15),
    DemoExport("D:\\Exports\\gate", (150, 300, 450, 600), 12000, fate="removed"),
    DemoExport("D:\\Exports\\warehouse", (20, 35, 50, 65, 80, 100), 24000),
    DemoExport("D:\\Exports\\archive", (300, 900), 2000, fate="vanishes"),
)
#: Simulated seconds at which the demo removes an export, makes the server unreachable (for
#: `OUTAGE` seconds), and restarts the PluginManager (not before every export that should
#: complete has completed). Watches report the outage after `LOST_AFTER` seconds.
REMOVE_AT, OUTAGE_AT, OUTAGE, RESTART_AT = 50.0, 60.0, 40.0, 110.0
LOST_AFTER = 10.0
#: Where the demo's recordings start (each device one minute after the previous one).
RECORDED_FROM = datetime(2024, 1, 19, 10, 0, tzinfo=timezone.utc)


def register(commands: Any, options: Options) -> None:
    """Add ``demo`` to ``commands``."""
    cmd = commands.add_parser(
        "demo",
        parents=[options.output],
        help="watch exports on the built-in simulator",
        description="Start the simulator in-process with several exports, remove one, "
        "make the server unreachable for a few seconds, restart its PluginManager so "
        "another vanishes, and watch them all. "
        "Takes about 15 seconds; exits 0.",
    )
    cmd.add_argument(
        "--speed",
        type=positive,
        default=10.0,
        metavar="X",
        help="simulated seconds per real second (default: 10)",
    )
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo on this terminal (or as plain lines or JSON); return 0."""
    return anyio.run(run_demo, make_console(), args.speed, args.json, backend=args.backend)


async def run_demo(console: Console, speed: float, json: bool) -> int:
    """Run the demo at ``speed`` simulated seconds per real second; return 0."""
    stage = Stage(speed)
    async with stage.client(max_poll=0.2) as client:

        def view_of(ids: list[str]) -> View:
            board = Board(ids, title=f"vdgexport demo ({speed:g}x)")
            return make_view(console, board, json=json)

        view = await stage.play(client, view_of)
    view.summary()
    return EXIT_OK


class Stage:
    """The demo's simulator (behind a switch that can make it unreachable) and its script.

    ``vdgexport demo`` plays the script once; ``vdgexport serve --demo`` round after round.
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.monotonic()
        self.sim = SenseSimulator(clock=self.clock)
        self.switch = _Switch(self.sim)

    def clock(self) -> float:
        """Simulated seconds since the stage was made."""
        return (time.monotonic() - self._t0) * self.speed

    def client(self, *, max_poll: float) -> Client:
        """A client of the simulator, polling at a pace fitted to the speed."""
        poll = min(max_poll, max(0.01, 2.0 / self.speed))
        return Client(
            "http://simulator",
            transport=httpx.ASGITransport(app=self.switch),
            poll_interval=poll,
            max_poll_interval=poll * 2,
            lost_after=LOST_AFTER / self.speed,
        )

    async def play(self, client: Client, view_of: Callable[[list[str]], View]) -> View:
        """Play the script once: create the exports, remove one, an outage, a restart.

        Every event goes to the view ``view_of(ids)`` makes; it is returned once every
        watch has ended.
        """
        start = self.clock()

        def clock() -> float:
            return self.clock() - start

        sim = self.sim
        ids = [await _create(client, sim, number, e) for number, e in enumerate(DEMO_EXPORTS, 1)]
        fates = {i: e.fate for i, e in zip(ids, DEMO_EXPORTS, strict=True)}
        view = view_of(ids)
        director = _Director(client, sim, self.switch, clock, self.speed, fates, view)
        with view:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(director.run)
                await run_watches(client, ids, view, observe=director.observe)
                tasks.cancel_scope.cancel()
        return view


async def _create(client: Client, sim: SenseSimulator, number: int, export: DemoExport) -> str:
    """Start one demo export through ``exportVideo``, as a user's service would.

    The simulator writes ``export_rate`` seconds of recording per second, so each device's
    span is as long as its duration asks for.
    """
    spans = []
    for index, duration in enumerate(export.durations):
        start = RECORDED_FROM + timedelta(minutes=index)
        end = start + timedelta(seconds=duration * sim.export_rate)
        spans.append(DeviceSpan(_uid(0x5E, number), _uid(number, index + 1), start, end))
    sim.export_pending = export.pending
    return await client.create_export(spans, path=export.path, bandwidth_kbps=export.bandwidth_kbps)


def _uid(major: int, minor: int) -> str:
    """A GUID-like UID whose first block tells the demo's devices apart."""
    return f"{{{major:04X}{minor:04X}-0000-4000-8000-{major:06X}{minor:06X}}}"


class _Switch:
    """The simulator behind a switch: while it is off, the server cannot be reached."""

    def __init__(self, app: SenseSimulator) -> None:
        self.app = app
        self.off = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI connection, or refuse it as an unreachable server would."""
        if self.off:
            raise httpx.ConnectError("connection refused (the demo made the server unreachable)")
        await self.app(scope, receive, send)


class _Director:
    """Removes one export mid-way, makes the server unreachable for a while, then restarts
    the PluginManager so another export vanishes."""

    def __init__(
        self,
        client: Client,
        sim: SenseSimulator,
        switch: _Switch,
        clock: Callable[[], float],
        speed: float,
        fates: dict[str, str],
        view: View,
    ) -> None:
        self.client, self.sim, self.clock, self.speed, self.view = client, sim, clock, speed, view
        self.switch = switch
        self.fates = fates
        self.seen = {i: anyio.Event() for i in fates}
        self.ended = {i: anyio.Event() for i in fates}
        self.lost_or_ended = {i: anyio.Event() for i in fates}

    def observe(self, event: WatchEvent) -> None:
        """Note which exports have been seen, which have ended, which saw the outage."""
        self.seen[event.export_id].set()
        if is_terminal(event):
            self.ended[event.export_id].set()
        if is_terminal(event) or isinstance(event, ConnectionLost):
            self.lost_or_ended[event.export_id].set()

    async def _until(self, simulated: float) -> None:
        await anyio.sleep(max(0.0, (simulated - self.clock()) / self.speed))

    async def run(self) -> None:
        """The script: remove, make the server unreachable, restart (at the times above)."""
        for export_id, fate in self.fates.items():
            if fate == "removed":
                await self._until(REMOVE_AT)
                await self.seen[export_id].wait()
                self.view.note(f"demo: removing export {export_id}")
                await self.client.remove_export(export_id)
        await self._until(OUTAGE_AT)
        self.view.note("demo: the server stops answering for a while")
        self.switch.off = True
        await self._until(OUTAGE_AT + OUTAGE)
        for reported in self.lost_or_ended.values():  # however slow the machine
            await reported.wait()
        self.switch.off = False
        self.view.note("demo: the server answers again")
        await self._until(RESTART_AT)
        for export_id, fate in self.fates.items():
            if fate == "completes":
                await self.ended[export_id].wait()
        self.view.note("demo: restarting the PluginManager (export ids are reset)")
        self.sim.restart()

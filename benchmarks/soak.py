"""Soak: many watches on one client through random faults, restarts and id reuse.

``python -m benchmarks.soak [--watches N] [--exports N] [--minutes M] [--seed S]``
(or ``python benchmarks/soak.py``). The defaults are the full size of issue 6: 1,000
watches over 200 exports, 10 % of answers faulted, two PluginManager restarts (the second
with id reuse), 30 minutes of simulator time on a `ManualClock`. ``tests/test_soak.py``
runs a small version of the same code in CI.

The run is checked, not just timed. The simulator's ground truth gives every watch the
terminal event it must end with (completed, removed, vanished as not found, or replaced);
every event is checked as it is consumed (per device: ``previous_progress`` is the last
value seen, progress never goes back, no state is reported twice; per export: the status
chain is unbroken, the terminal event comes last). After ``aclose`` nothing may still run:
the poller stopped, no request in flight, the HTTP client closed. Memory is sampled with
`tracemalloc` through the run and must come back down once the watches are gone.

Timeline, as fractions of the run: all watches of wave A start at 0; some of A are removed
at 0.13; restart 1 at 0.27 (live ids answer -57: ``NOT_FOUND``), then wave B; restart 2 at
0.53 with wave C's exports added at once, so that B's low ids name new exports (``REPLACED``)
and the others answer -57 (C's watches start after one tick); some of C are removed at 0.67;
every export left completes by the end.

To let the poller see each step of the clock without sleeping, a probe export whose
progress moves at every step is watched too: once the probe reports the progress of the
current step, the whole tick that carried it (every watched id) has been applied.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

if __package__ in (None, ""):  # run as a script: make ``vdgexport`` importable from the repo
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

import vdgexport
from vdgexport import (
    DeviceProgress,
    ExportCompleted,
    ExportRecovered,
    ExportRemoved,
    ExportStalled,
    ExportStatus,
    ExportStatusChanged,
    ExportVanished,
    WatchEvent,
)
from vdgexport.testing import ManualClock, SenseSimulator

__all__ = ["Report", "Settings", "run"]

_PROBE_DURATION = 5000.0  # seconds: 0.1 % every 5 s of simulator time


@dataclass(frozen=True, slots=True)
class Settings:
    """The size of a soak.

    Attributes:
        watches: watches in all (over the three waves), at least one per export.
        exports: exports in all (wave A 60 %, B 25 %, C 15 %).
        minutes: simulator minutes the run lasts.
        step: seconds of simulator time per step (the poller sees every step).
        fault_rate: share of ``/command`` answers replaced by a random fault.
        seed: seeds the scenario and the simulator's faults.
        step_timeout: real seconds one step may take before the run is declared stuck.
    """

    watches: int = 1000
    exports: int = 200
    minutes: float = 30.0
    step: float = 10.0
    fault_rate: float = 0.1
    seed: int = 6
    step_timeout: float = 60.0


@dataclass(slots=True)
class Report:
    """What a soak did and found; `problems` must be empty."""

    watches: int = 0
    exports: int = 0
    steps: int = 0
    requests: int = 0
    faults: int = 0
    restarts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    matched: int = 0
    events: int = 0
    memory: list[int] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        mib = ", ".join(f"{m / 2**20:.1f}" for m in self.memory)
        return "\n".join(
            [
                f"watches          {self.watches} over {self.exports} exports",
                f"simulated        {self.steps} steps ({self.minutes_simulated:g} min)",
                f"requests         {self.requests}, faults injected {self.faults}",
                f"restarts         {self.restarts} (the second with id reuse)",
                f"outcomes         {outcomes}",
                f"outcomes matched {self.matched}/{self.watches}",
                f"events checked   {self.events}",
                f"memory (MiB)     {mib}",
                f"problems         {len(self.problems)}",
                f"wall time        {self.seconds:.1f} s",
            ]
        )

    minutes_simulated: float = 0.0


@dataclass(slots=True)
class _Export:
    """One export of the scenario and the outcome its watches must end with."""

    export_id: str
    expected: str | None = None  # COMPLETED, REMOVED, NOT_FOUND, REPLACED; None while live


class _Checker:
    """Consumes one watch, checking every event; records how the watch ended."""

    def __init__(self, export: _Export, report: Report) -> None:
        self.export = export
        self.report = report
        self.status: ExportStatus | None = None
        self.devices: dict[tuple[str, str], tuple[float, ExportStatus]] = {}
        self.outcome: str | None = None
        self.last_progress: float | None = None
        self.changed: Callable[[], None] = lambda: None

    def problem(self, text: str) -> None:
        self.report.problems.append(f"watch of {self.export.export_id!r}: {text}")

    def check(self, event: WatchEvent) -> None:
        self.report.events += 1
        if self.outcome is not None:
            self.problem(f"event after the terminal one: {event!r}")
        if event.export_id != self.export.export_id:
            self.problem(f"event of another id: {event.export_id!r}")
        match event:
            case DeviceProgress():
                self._device(event)
            case ExportStatusChanged():
                if event.previous_status != self.status or event.status == self.status:
                    self.problem(f"status {self.status} then {event!r}")
                self.status = event.status
            case ExportCompleted():
                self.outcome = "COMPLETED"
            case ExportRemoved():
                self.outcome = "REMOVED"
            case ExportVanished():
                self.outcome = event.reason.name
            case ExportStalled() | ExportRecovered():
                self.problem(f"stall events without stall_after: {event!r}")
        self.changed()

    def _device(self, event: DeviceProgress) -> None:
        key = (event.server_id, event.device_id)
        last = self.devices.get(key)
        previous = None if last is None else last[0]
        if event.previous_progress != previous:
            self.problem(f"previous_progress {event.previous_progress} != last seen {previous}")
        if last is not None and event.progress < last[0]:
            self.problem(f"progress went back from {last[0]} to {event.progress}")
        if last is not None and (event.progress, event.status) == last:
            self.problem(f"the same device state twice: {last}")
        self.devices[key] = (event.progress, event.status)
        self.last_progress = event.progress

    async def consume(self, client: vdgexport.Client, *, task_status: Any) -> None:
        try:
            async with client.watch(self.export.export_id) as events:
                task_status.started()
                async for event in events:
                    self.check(event)
        except vdgexport.VdgError as exc:
            self.outcome = f"error {type(exc).__name__}"
            self.changed()
        if self.outcome is None:
            self.problem("the watch ended without a terminal event")


class _Counter:
    """ASGI middleware: counts requests and those in flight (none may be left at the end)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.total = 0
        self.active = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.total += 1
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class _Probe:
    """An export whose progress moves at every step, watched to know a tick was applied."""

    def __init__(
        self, sim: SenseSimulator, clock: ManualClock, number: int, report: Report
    ) -> None:
        self.clock, self.since = clock, clock()
        export_id = sim.add_export(export_id=f"probe-{number}", duration=_PROBE_DURATION)
        self.export = _Export(export_id)
        self.checker = _Checker(self.export, report)

    def expected(self) -> float:
        tenths = min(int((self.clock() - self.since) / _PROBE_DURATION * 1000 + 1e-9), 999)
        return tenths / 10

    async def wait(self, predicate: Callable[[], bool], limit: float, what: str) -> None:
        try:
            with anyio.fail_after(limit):
                while not predicate():
                    moved = anyio.Event()
                    self.checker.changed = moved.set
                    await moved.wait()
        except TimeoutError:
            raise TimeoutError(f"stuck waiting for the poller: {what}") from None

    async def seen_now(self, limit: float) -> None:
        """Wait until the probe reported the progress of the current clock."""
        want = self.expected()
        await self.wait(lambda: self.checker.last_progress == want, limit, f"probe at {want}")

    async def first_poll(self, limit: float) -> None:
        """Wait until the probe got its first events (one whole tick since it was added)."""
        await self.wait(lambda: self.checker.devices != {}, limit, "the probe's first poll")


class _Scenario:
    """Drives the simulator along the timeline and keeps the ground truth."""

    def __init__(self, settings: Settings, report: Report) -> None:
        self.s = settings
        self.report = report
        self.rng = random.Random(settings.seed)
        self.clock = ManualClock()
        self.sim = SenseSimulator(clock=self.clock)
        self.app = _Counter(self.sim)
        self.exports: list[_Export] = []
        self.live: list[_Export] = []
        self.checkers: list[_Checker] = []
        self.total = settings.minutes * 60.0
        self.faults_seen = 0
        self.requests_seen = 0

    # -- the simulator -------------------------------------------------------------------

    def add_wave(self, count: int, *, longest: float) -> list[_Export]:
        """``count`` exports that all finish within ``longest`` seconds from now."""
        wave = []
        for _ in range(count):
            devices = self.rng.randint(1, 4)
            pending = self.rng.uniform(0.0, 0.1 * longest)
            durations = [self.rng.uniform(0.2, 0.9) * longest for _ in range(devices)]
            export_id = self.sim.add_export(duration=durations, pending=pending)
            wave.append(_Export(export_id))
        self.exports += wave
        self.live += wave
        return wave

    def status(self, export: _Export) -> str:
        return self.sim.status_of(export.export_id)

    def remove_some(self, count: int) -> None:
        for export in self.rng.sample(self.live, min(count, len(self.live))):
            export.expected = "COMPLETED" if self.status(export) == "COMPLETED" else "REMOVED"
            self.sim.remove_export(export.export_id)
            self.live.remove(export)

    def restart(self, reused: set[str]) -> None:
        """Restart the PluginManager; settle every live export as the poller must see it."""
        for export in self.live:
            if self.status(export) == "COMPLETED":
                export.expected = "COMPLETED"
            elif export.export_id in reused:
                export.expected = "REPLACED"
            else:
                export.expected = "NOT_FOUND"
        self.live = []
        self.sim.restart()
        self.report.restarts += 1

    def settle_completed(self) -> None:
        for export in list(self.live):
            if self.status(export) == "COMPLETED":
                export.expected = "COMPLETED"
                self.live.remove(export)

    def tally_requests(self) -> None:
        """Count the faults served so far and drop the simulator's log (bounded memory)."""
        self.faults_seen += sum(1 for r in self.sim.requests if r.fault is not None)
        self.requests_seen += len(self.sim.requests)
        self.sim.requests.clear()


def _share(total: int, parts: list[float]) -> list[int]:
    counts = [math.floor(total * p) for p in parts]
    counts[0] += total - sum(counts)
    return counts


def _memory_sample() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def run(settings: Settings = Settings()) -> Report:
    """Run one soak; the report lists every problem found (none is raised)."""
    if settings.watches < settings.exports or settings.exports < 3:
        raise ValueError("need at least 3 exports and one watch per export")
    started = time.perf_counter()
    report = Report()
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        await _run(settings, report)
    finally:
        if not tracing:
            tracemalloc.stop()
    report.seconds = time.perf_counter() - started
    return report


async def _run(s: Settings, report: Report) -> None:
    sc = _Scenario(s, report)
    sizes = _share(s.exports, [0.60, 0.25, 0.15])
    watches = _share(s.watches, [0.60, 0.25, 0.15])
    steps = max(1, round(sc.total / s.step))
    at = {name: round(steps * f) for name, f in _TIMELINE.items()}
    report.exports, report.watches = s.exports, s.watches
    sc.sim.inject_random(s.fault_rate, seed=s.seed)
    client = vdgexport.Client(
        "http://sim.soak",
        transport=httpx.ASGITransport(app=sc.app),
        poll_interval=0.001,
        max_poll_interval=0.004,
        outage_timeout=None,
        timeout=5.0,
        clock=sc.clock,
    )
    report.memory.append(_memory_sample())
    probes: list[_Probe] = []
    async with client, anyio.create_task_group() as tg:

        async def watch_wave(wave: list[_Export], count: int) -> None:
            targets = wave + [sc.rng.choice(wave) for _ in range(count - len(wave))]
            for export in targets:
                checker = _Checker(export, report)
                sc.checkers.append(checker)
                await tg.start(checker.consume, client)

        async def new_probe() -> _Probe:
            probe = _Probe(sc.sim, sc.clock, len(probes) + 1, report)
            probes.append(probe)
            await tg.start(probe.checker.consume, client)
            await probe.first_poll(s.step_timeout)
            return probe

        wave_a = sc.add_wave(sizes[0], longest=sc.total * 0.5)
        await watch_wave(wave_a, watches[0])
        probe = await new_probe()
        for step in range(1, steps + 1):
            sc.clock.advance(s.step)
            await probe.seen_now(s.step_timeout)
            sc.settle_completed()
            if step in (at["remove_a"], at["remove_c"]):
                sc.remove_some(max(1, len(sc.live) // 6))
            elif step == at["restart_1"]:
                probe.export.expected = "NOT_FOUND"
                sc.restart(reused=set())
                probe = await new_probe()
                # Every old id must answer -57 before wave B reuses ids; a confirmation that
                # failed is retried at the next tick, so wait for all of them to end.
                gone = [c for c in sc.checkers if c.export.expected == "NOT_FOUND"]
                with anyio.fail_after(s.step_timeout):
                    while any(c.outcome is None for c in gone):
                        await _next_outcome(gone)
                longest = sc.total * (at["restart_2"] - step) / steps * 1.6
                wave_b = sc.add_wave(sizes[1], longest=longest)
                await watch_wave(wave_b, watches[1])
            elif step == at["restart_2"]:
                probe.export.expected = "NOT_FOUND"
                reused = {str(n) for n in range(1, sizes[2] + 1)}  # ids count from 1 again
                sc.restart(reused=reused)
                # Wave C's exports at once, before any poll: B's low ids now name them.
                remaining = sc.total * (steps - step) / steps * 0.9
                wave_c = sc.add_wave(sizes[2], longest=remaining)
                assert {e.export_id for e in wave_c} == reused
                # One tick (the new probe's first poll) ends B's watches of those ids with
                # REPLACED. Only then are C's watched: a watch of an id still polled would
                # get the last snapshot at once (B's export) and then REPLACED too.
                probe = await new_probe()
                await watch_wave(wave_c, watches[2])
            if step % max(1, steps // 10) == 0:
                sc.tally_requests()
                report.memory.append(_memory_sample())
            report.steps = step
        sc.settle_completed()
        for export in sc.live:
            report.problems.append(f"export {export.export_id!r} still {sc.status(export)}")
            export.expected = "(still live)"
        probe.export.expected = "REMOVED"
        sc.sim.remove_export(probe.export.export_id)
        with anyio.fail_after(s.step_timeout):
            while any(c.outcome is None for c in sc.checkers + [p.checker for p in probes]):
                await _next_outcome(sc.checkers + [p.checker for p in probes])
        report.memory.append(_memory_sample())
    _check_closed(client, sc, report)
    sc.tally_requests()
    report.requests, report.faults = sc.requests_seen, sc.faults_seen
    report.minutes_simulated = sc.clock() / 60.0
    _check_outcomes(sc.checkers, probes, report)
    _check_memory(report)


_TIMELINE = {"remove_a": 0.13, "restart_1": 0.27, "restart_2": 0.53, "remove_c": 0.67}


async def _next_outcome(checkers: list[_Checker]) -> None:
    moved = anyio.Event()
    for checker in checkers:
        if checker.outcome is None:
            checker.changed = moved.set
    await moved.wait()


def _check_closed(client: vdgexport.Client, sc: _Scenario, report: Report) -> None:
    poller = client._poller
    if poller._running or poller.watched:
        report.problems.append(f"poller still running after aclose ({poller.watched} ids)")
    if sc.app.active:
        report.problems.append(f"{sc.app.active} requests still in flight after aclose")
    if not client._http.is_closed:
        report.problems.append("the HTTP client is still open after aclose")


def _check_outcomes(checkers: list[_Checker], probes: list[_Probe], report: Report) -> None:
    for checker in checkers + [p.checker for p in probes]:
        outcome, expected = checker.outcome, checker.export.expected
        if checker in checkers:
            report.outcomes[str(outcome)] = report.outcomes.get(str(outcome), 0) + 1
        if outcome == expected:
            report.matched += checker in checkers
        else:
            report.problems.append(
                f"watch of {checker.export.export_id!r} ended {outcome}, expected {expected}"
            )


def _check_memory(report: Report) -> None:
    """Memory comes back down: at the end it is near where it was before any watch."""
    first, last = report.memory[0], report.memory[-1]
    if last > first + 8 * 2**20:
        report.problems.append(f"memory grew from {first} to {last} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Settings()
    parser.add_argument("--watches", type=int, default=defaults.watches)
    parser.add_argument("--exports", type=int, default=defaults.exports)
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    settings = Settings(
        watches=args.watches,
        exports=args.exports,
        minutes=args.minutes,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    report = anyio.run(run, settings, backend=args.backend)
    print(report.summary())
    for problem in report.problems[:20]:
        print("PROBLEM:", problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

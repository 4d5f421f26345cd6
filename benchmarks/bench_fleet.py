"""The fleet through a real redis-server: ``python -m benchmarks.bench_fleet [--smoke]``.

- requests: VDG requests per tick with 1 and 3 publisher processes (``vdgexport publish``),
  beside the naive setup, 3 processes each with its own `Client` (``vdgexport watch``).
- failover: leader SIGKILL to the first event a subscriber gets from the new leader, median
  and worst of n, for two leases.
- latency: a change on the simulator to the event at a subscriber through Redis, p50/p99,
  with 1,000 watched exports, beside an in-process watch of the same export on the
  publisher's own client (the floor: no Redis hop).
- throughput: events per second one subscriber decodes, beside a bare ``XREAD`` loop that
  decodes nothing (the floor).
- memory: Redis memory (``MEMORY USAGE`` of the stream) per 10,000 retained events.

Numbers vary with the load of the machine; nothing here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import anyio
import coredis

import vdgexport
import vdgexport.fleet
from tests._fleet import PublisherProcess
from tests._redis import REDIS_SERVER, RedisServer
from tests._servers import Recorder, serve
from vdgexport.fleet import FleetEvent, Publisher
from vdgexport.fleet._redis import Keys
from vdgexport.testing import ManualClock, SenseSimulator

from ._common import fmt_table

NAME = "site"


def _wait(check: Any, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.01)


# -- requests per tick ---------------------------------------------------------------------


def requests_per_tick(publishers: int, seconds: float, interval: float) -> float:
    sim = SenseSimulator()  # real time: each export moves by 0.1 % per tick
    for _ in range(20):
        sim.add_export(devices=2, duration=100 * interval * 10)
    redis = RedisServer()
    redis.start()
    recorder = Recorder(sim)
    procs: list[PublisherProcess] = []
    try:
        with serve(recorder) as url:
            procs += [
                PublisherProcess(url, redis.url, user=f"u{n}", lease=2.0, interval=interval)
                for n in range(publishers)
            ]
            _wait(lambda: any(p.said("leading") is not None for p in procs))

            def settled() -> bool:  # each one leads or stands by (an index may be 0)
                said = [(p.said("leading"), p.said("standing by")) for p in procs]
                return all(lead is not None or standby is not None for lead, standby in said)

            return _requests_per_tick(recorder, settled, seconds, interval)
    finally:
        for p in procs:
            p.close()
        redis.stop()


def naive_requests_per_tick(processes: int, seconds: float, interval: float) -> float:
    """``processes`` separate clients, each watching every export (no fleet)."""
    import os
    import subprocess

    sim = SenseSimulator()
    ids = [sim.add_export(devices=2, duration=100 * interval * 10) for _ in range(20)]
    recorder = Recorder(sim)
    with serve(recorder) as url:
        command = [sys.executable, "-m", "vdgexport", "watch", *ids, "--url", url, "--json"]
        command += ["--interval", str(interval)]
        env = {**os.environ, "PYTHONPATH": str(_root())}
        procs = [
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            for _ in range(processes)
        ]
        try:
            return _requests_per_tick(
                recorder, lambda: len(recorder.authorizations) >= processes, seconds, interval
            )
        finally:
            for p in procs:
                p.kill()
                p.wait()


def _requests_per_tick(
    recorder: Recorder, ready: Callable[[], bool], seconds: float, interval: float
) -> float:
    """Once ``ready()``: the requests the server gets per ``interval`` over ``seconds``."""
    _wait(ready)
    start, t0 = len(recorder.authorizations), time.monotonic()
    time.sleep(seconds)
    sent = len(recorder.authorizations) - start
    return sent / ((time.monotonic() - t0) / interval)


def _root() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


# -- failover ------------------------------------------------------------------------------


async def failover_times(lease: float, rounds: int) -> list[float]:
    sim = SenseSimulator()  # real time: ten exports, one of them moves about every 30 ms
    for n in range(10):
        sim.add_export(devices=1, duration=300, pending=n * 0.03)
    redis = RedisServer()
    redis.start()
    times: list[float] = []
    try:
        with serve(sim) as url:
            live = [PublisherProcess(url, redis.url, user="a", lease=lease, interval=0.05)]
            async with vdgexport.fleet.subscribe(redis.url, name=NAME) as events:
                await live[0].says("leading", within=30)
                for _ in range(rounds):
                    live.append(PublisherProcess(url, redis.url, user="b", lease=lease))
                    await live[-1].says("standing by", within=30)
                    await _next(events)
                    leader = next(p for p in live if p.said("leading") is not None)
                    leader.signal(signal.SIGKILL)
                    killed, wall = time.monotonic(), datetime.now(timezone.utc)
                    while (await _next(events)).event.observed_at <= wall:
                        pass  # written by the killed leader (read late: a backlog)
                    times.append(time.monotonic() - killed)
                    live.remove(leader)
                    leader.close()
            for p in live:
                p.close()
    finally:
        redis.stop()
    return times


async def _all_written(url: str, exports: int) -> bool:
    return len((await vdgexport.fleet.snapshot(url, name=NAME)).exports) >= exports


async def _next(events: vdgexport.fleet.Subscription) -> FleetEvent:
    with anyio.fail_after(60):
        return await events.__anext__()


# -- latency -------------------------------------------------------------------------------


async def latency(exports: int, samples: int) -> tuple[list[float], list[float]]:
    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    ids = [sim.add_export(devices=1, duration=1e4) for _ in range(exports)]
    for export_id in ids[1:]:
        sim.pause(export_id)
    redis = RedisServer()
    redis.start()
    fleet_lat: list[float] = []
    local_lat: list[float] = []
    import httpx

    client = vdgexport.Client(
        "http://sim",
        transport=httpx.ASGITransport(app=sim),
        poll_interval=0.05,
        max_poll_interval=0.05,
        clock=clock,
    )
    try:
        async with client, anyio.create_task_group() as tasks:
            publisher = Publisher(client, redis.url, name=NAME, lease=5.0, list_interval=0.05)
            tasks.start_soon(publisher.run)
            async with (
                vdgexport.fleet.subscribe(redis.url, name=NAME, export_id=ids[0]) as events,
                client.watch(ids[0]) as local,
            ):
                await _next(events), await _next(events)
                await local.__anext__(), await local.__anext__()
                # The leader first writes every export's first events (3 per export): measure
                # once that backlog is written, not the wait behind it.
                with anyio.fail_after(120):
                    while not await _all_written(redis.url, exports):  # noqa: ASYNC110
                        await anyio.sleep(0.05)  # Redis has no event for it
                for _ in range(samples):
                    clock.advance(10)  # one more 0.1 %
                    changed = time.monotonic()
                    await local.__anext__()
                    local_lat.append(time.monotonic() - changed)
                    await _next(events)
                    fleet_lat.append(time.monotonic() - changed)
            tasks.cancel_scope.cancel()
    finally:
        redis.stop()
    return fleet_lat, local_lat


# -- throughput and memory -----------------------------------------------------------------


async def throughput_and_memory(count: int) -> dict[str, float]:
    redis = RedisServer()
    redis.start()
    keys = Keys.of(NAME)
    body = json.dumps(
        {
            "type": "DeviceProgress",
            "export_id": "17",
            "observed_at": "2024-01-19T10:00:01.123456+00:00",
            "server_id": "{EB03C065-3980-4D1E-5EBE-DB08F215E456}",
            "device_id": "{EF9A3303-C459-3994-4637-0C0BD5A326DE}",
            "progress": 42.5,
            "previous_progress": 42.4,
            "status": "SYNCING",
            "bandwidth_kbps": 8000.0,
            "rate": 0.1,
            "eta": 575.0,
        }
    )
    try:
        admin = coredis.Redis.from_url(redis.url, decode_responses=True)
        async with admin:
            await admin.set(keys.epoch, "e")
            for start in range(0, count, 1000):
                async with admin.pipeline(transaction=False) as pipe:
                    for _ in range(min(1000, count - start)):
                        pipe.xadd(keys.stream, {"p": "e", "x": "17", "e": body})
            memory = await admin.memory_usage(keys.stream) or 0
            first = (await admin.xrange(keys.stream, count=1))[0].identifier
            t0 = time.perf_counter()
            cursor, seen = "0-0", 0
            while seen < count:
                reply = await admin.xread({keys.stream: cursor}, count=500)
                entries = (reply or {}).get(keys.stream, ())
                seen += len(entries)
                cursor = entries[-1].identifier
            floor = count / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            cursor, seen = "0-0", 0
            while seen < count:  # the same, with each event's JSON read: what any reader does
                reply = await admin.xread({keys.stream: cursor}, count=500)
                entries = (reply or {}).get(keys.stream, ())
                for entry in entries:
                    json.loads(entry.field_values["e"])
                seen += len(entries)
                cursor = entries[-1].identifier
            floor_json = count / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        seen = 1  # resumed after the first entry
        async with vdgexport.fleet.subscribe(redis.url, name=NAME, since=f"v1:e:{first}") as ev:
            with anyio.fail_after(120):  # one bound for the whole read, not one per event
                async for _ in ev:
                    seen += 1
                    if seen == count:
                        break
        ours = count / (time.perf_counter() - t0)
    finally:
        redis.stop()
    return {
        "ours": ours,
        "floor": floor,
        "floor_json": floor_json,
        "bytes_per_10k": memory * 10_000 / count,
    }


# -- main ----------------------------------------------------------------------------------


def run(smoke: bool) -> dict[str, Any]:
    seconds, interval = (1.0, 0.1) if smoke else (5.0, 0.1)
    results: dict[str, Any] = {}
    _say("requests per tick")
    results["requests_per_tick"] = {
        "fleet_1": requests_per_tick(1, seconds, interval),
        "fleet_3": requests_per_tick(3, seconds, interval),
        "naive_3_clients": naive_requests_per_tick(3, seconds, interval),
    }
    _say("failover")
    leases = [1.0] if smoke else [2.0, 10.0]
    rounds = 1 if smoke else 10
    results["failover"] = {str(lease): anyio.run(failover_times, lease, rounds) for lease in leases}
    _say("latency")
    exports, samples = (10, 5) if smoke else (1_000, 200)
    fleet_lat, local_lat = anyio.run(latency, exports, samples)
    results["latency"] = {"exports": exports, "fleet": fleet_lat, "in_process": local_lat}
    _say("throughput and memory")
    results["throughput"] = anyio.run(throughput_and_memory, 1_000 if smoke else 10_000)
    return results


def _say(text: str) -> None:
    print(f"bench_fleet: {text}", file=sys.stderr, flush=True)


def table(results: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    r = results["requests_per_tick"]
    rows.append(["VDG requests per tick, 1 publisher", f"{r['fleet_1']:.2f}", ""])
    rows.append(["VDG requests per tick, 3 publishers", f"{r['fleet_3']:.2f}", ""])
    rows.append(["  naive: 3 clients, no fleet", f"{r['naive_3_clients']:.2f}", ""])
    for lease, times in results["failover"].items():
        rows.append(
            [
                f"failover, lease {lease} s (n={len(times)})",
                f"median {statistics.median(times):.2f} s",
                f"worst {max(times):.2f} s",
            ]
        )
    lat = results["latency"]
    for label, values in (("through Redis", lat["fleet"]), ("in-process watch", lat["in_process"])):
        values = sorted(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        rows.append(
            [
                f"latency at {lat['exports']} exports, {label}",
                f"p50 {statistics.median(values) * 1000:.1f} ms",
                f"p99 {p99 * 1000:.1f} ms",
            ]
        )
    t = results["throughput"]
    rows.append(["events/s, one subscriber", f"{t['ours']:,.0f}", f"floor XREAD {t['floor']:,.0f}"])
    rows.append(
        [
            "  floor: XREAD + json.loads",
            f"{t['floor_json']:,.0f}",
            f"ours is {t['floor_json'] / t['ours']:.1f}x slower",
        ]
    )
    rows.append(["Redis memory per 10,000 events", f"{t['bytes_per_10k'] / 1e6:.2f} MB", ""])
    return fmt_table(["fleet", "value", ""], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fleet")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it still run?")
    args = parser.parse_args(argv)
    if REDIS_SERVER is None:
        print("bench_fleet: redis-server is not installed; skipped")
        return 0
    results = run(args.smoke)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

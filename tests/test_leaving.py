"""Leaving a watch in any way unsubscribes at once, with the garbage collector off.

Each test runs over real loopback HTTP (uvicorn) and over ``httpx.ASGITransport``, on
asyncio and trio. ``gc.disable()``: a watch kept alive by a reference cycle (a traceback
holding the frame of ``Watch.__anext__``) would stay subscribed and keep polling.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

import vdgexport
from vdgexport import DeviceProgress, ExportStatusChanged
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve


@pytest.fixture(autouse=True)
def no_gc() -> Iterator[None]:
    """The collector off for the test: nothing may depend on it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture(params=["http", "asgi"])
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def client_of(
    sim: SenseSimulator, clock: ManualClock, via: str, **options: object
) -> AsyncIterator[vdgexport.Client]:
    settings: dict[str, object] = {
        "poll_interval": 0.001,
        "max_poll_interval": 0.004,
        "timeout": 5.0,
        "clock": clock,
        **options,
    }
    if via == "asgi":
        transport = httpx.ASGITransport(app=sim)
        async with vdgexport.Client("http://sim.test", transport=transport, **settings) as c:
            yield c
        return
    with serve(sim) as url:
        async with vdgexport.Client(url, **settings) as client:
            yield client


def unsubscribed(client: vdgexport.Client) -> bool:
    stats = client.stats()
    return stats.watches == 0 and stats.watched_ids == 0


@pytest.mark.parametrize(
    "form", ["async for", "async with", "async for, busy in the body", "a local, busy in the body"]
)
async def test_cancelling_the_consumer_unsubscribes(
    form: str, via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    """``async for`` alone is the README's first form: its cancellation used to leave the
    watch alive (and polling) in the traceback on asyncio until the collector ran. A
    consumer busy in its own loop body is not in ``__anext__`` when it is cancelled, and a
    local ``watch`` is kept by the traceback's frame: the watch is bound to its task."""
    eid = sim.add_export(duration=100)
    async with client_of(sim, clock, via) as client:
        started = anyio.Event()

        async def consume() -> None:
            busy = form.endswith("busy in the body")
            if form.startswith("async for"):
                async for _ in client.watch(eid):
                    started.set()
                    if busy:
                        await anyio.sleep_forever()
                return
            if form.startswith("a local"):
                watch = client.watch(eid)
                async for _ in watch:
                    started.set()
                    await anyio.sleep_forever()
            async with client.watch(eid) as events:
                async for _ in events:
                    started.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await started.wait()
                assert client.stats().watches == 1
                tg.cancel_scope.cancel()
            await anyio.lowlevel.checkpoint()  # the callbacks of the ended task run
        assert unsubscribed(client)


async def test_break_without_async_with_unsubscribes(
    via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client_of(sim, clock, via) as client:
        with anyio.fail_after(5):
            async for _ in client.watch(eid):
                break
        assert unsubscribed(client)


async def test_leaving_async_with_unsubscribes(
    via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client_of(sim, clock, via) as client:
        with anyio.fail_after(5):
            async with client.watch(eid) as events:
                await events.__anext__()
        assert unsubscribed(client)


async def test_a_timeout_around_next_unsubscribes_and_the_watch_goes_on_after(
    via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    """A consumer that gives up waiting for a while is not subscribed meanwhile; when it
    asks again it gets what changed since what it had read, nothing twice."""
    eid = sim.add_export(duration=100)
    async with client_of(sim, clock, via) as client, client.watch(eid) as events:
        with anyio.fail_after(5):
            first = [await events.__anext__(), await events.__anext__()]
        assert [type(e) for e in first] == [ExportStatusChanged, DeviceProgress]
        with anyio.move_on_after(0.01):
            await events.__anext__()  # nothing moves: the wait is cancelled
        assert unsubscribed(client)
        clock.advance(30)
        with anyio.fail_after(5):
            event = await events.__anext__()
        assert isinstance(event, DeviceProgress)
        assert (event.progress, event.previous_progress) == (30.0, 0.0)
        assert client.stats().watches == 1


@pytest.mark.parametrize("way", ["break", "async with", "aclose", "cancel", "cancel, busy"])
async def test_leaving_a_list_watch_unsubscribes_at_once(
    way: str, via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    """And the one id watch left is polled by id again, from the next tick."""
    eid = sim.add_export(duration=1000)
    async with client_of(sim, clock, via) as client, client.watch(eid) as events:
        with anyio.fail_after(5):
            if way == "break":
                async for _ in client.watch_list():
                    break
            elif way == "async with":
                async with client.watch_list() as lists:
                    await lists.__anext__()
            elif way == "aclose":
                lists = client.watch_list()
                await lists.__anext__()
                await lists.aclose()
            else:
                async with anyio.create_task_group() as tasks:
                    got = anyio.Event()

                    async def consume() -> None:
                        if way == "cancel":
                            async for _ in client.watch_list():
                                got.set()
                        lists = client.watch_list()  # kept by the traceback on asyncio
                        async for _ in lists:
                            got.set()
                            await anyio.sleep_forever()  # busy in the loop body

                    tasks.start_soon(consume)
                    await got.wait()
                    tasks.cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()  # the callbacks of the ended task run
            assert client.stats().list_watches == 0
            await events.__anext__()
            await events.__anext__()  # the first snapshot
            left = len(sim.requests)
            for _ in range(3):
                clock.advance(1)
                assert isinstance(await events.__anext__(), DeviceProgress)
        after = [r for r in sim.requests[left:] if "exportid" not in r.query]
        assert len(after) <= 1  # a list request in flight as it left, no more


async def test_many_watches_read_by_one_task_leave_nothing_behind_on_it(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """Each watch a long-lived task reads is bound to it (on asyncio) until the watch ends
    or is freed: hundreds of them leave nothing on the task."""
    eid = sim.add_export(duration=100)
    transport = httpx.ASGITransport(app=sim)
    async with vdgexport.Client("http://sim.test", transport=transport, clock=clock) as client:

        async def read(times: int) -> int:
            for n in range(times):
                if n % 2:
                    async for _ in client.watch(eid):
                        break  # freed at once
                else:
                    async with client.watch(eid) as events:
                        await events.__anext__()
            await anyio.lowlevel.checkpoint()
            return traced(tracemalloc.take_snapshot())

        tracemalloc.start()
        try:
            with anyio.fail_after(10):
                async with client.watch(eid) as kept:  # each new one is answered at once
                    await kept.__anext__()
                    before = await read(50)
                    after = await read(500)
        finally:
            tracemalloc.stop()
    assert after - before < 1024, (before, after)


def traced(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still allocated by the binding of watches to tasks."""
    kept = snapshot.filter_traces([tracemalloc.Filter(True, "*_wakeup.py")])
    return sum(stat.size for stat in kept.statistics("filename"))

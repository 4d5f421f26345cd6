"""Leaving a watch in any way unsubscribes at once, with the garbage collector off.

Each test runs over real loopback HTTP (uvicorn) and over ``httpx.ASGITransport``, on
asyncio and trio. ``gc.disable()``: a watch kept alive by a reference cycle (a traceback
holding the frame of ``Watch.__anext__``) would stay subscribed and keep polling.
"""

from __future__ import annotations

import gc
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


@pytest.mark.parametrize("form", ["async for", "async with"])
async def test_cancelling_the_consumer_unsubscribes(
    form: str, via: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    """``async for`` alone is the README's first form: its cancellation used to leave the
    watch alive (and polling) in the traceback on asyncio until the collector ran."""
    eid = sim.add_export(duration=100)
    async with client_of(sim, clock, via) as client:
        started = anyio.Event()

        async def consume() -> None:
            if form == "async for":
                async for _ in client.watch(eid):
                    started.set()
                return
            async with client.watch(eid) as events:
                async for _ in events:
                    started.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await started.wait()
                assert client.stats().watches == 1
                tg.cancel_scope.cancel()
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


@pytest.mark.parametrize("way", ["break", "async with", "aclose", "cancel"])
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
                        async for _ in client.watch_list():
                            got.set()

                    tasks.start_soon(consume)
                    await got.wait()
                    tasks.cancel_scope.cancel()
            assert client.stats().list_watches == 0
            await events.__anext__()
            await events.__anext__()  # the first snapshot
            left = len(sim.requests)
            for _ in range(3):
                clock.advance(1)
                assert isinstance(await events.__anext__(), DeviceProgress)
        after = [r for r in sim.requests[left:] if "exportid" not in r.query]
        assert len(after) <= 1  # a list request in flight as it left, no more

"""`Client.stats()` read from another thread while watches come and go (F20).

``vdgexport publish --metrics-port`` and the relay's ``/metrics`` read the counts from a
server thread; the count of watches once summed the poller's entries there, and the loop
changing them made it raise "dictionary changed size during iteration". The counts are
ints kept on the event loop now. Over loopback HTTP (uvicorn) and in-process, on asyncio
and trio.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import anyio
import pytest

import vdgexport
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve
from .conftest import make_client


def subscribed(client: vdgexport.Client) -> int:
    """The watches the poller holds, counted on the loop (the truth `stats` must give)."""
    entries = client._poller._entries.values()
    return sum(len(e.subs) + len(e.fresh or ()) for e in entries)


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


async def test_stats_read_from_another_thread_while_watches_join_and_leave(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=1e6) for _ in range(600)]
    errors: list[str] = []
    seen: list[int] = []
    stop = threading.Event()
    client = vdgexport.Client(
        url, clock=clock, poll_interval=0.005, max_poll_interval=0.005, timeout=5.0
    )
    async with client:

        def scrape() -> None:  # what each GET /metrics does, in the server's thread
            while not stop.is_set():
                try:
                    seen.append(client.stats().watches)
                except Exception as exc:  # main: RuntimeError, dict changed size
                    errors.append(repr(exc))
                    return

        thread = threading.Thread(target=scrape)
        thread.start()
        try:
            for round_ in range(30):
                start = round_ * 20 % 400
                watches = [client.watch(i) for i in ids[start : start + 200]]
                for watch in watches:
                    await watch.__aenter__()
                with anyio.fail_after(10):
                    await watches[-1].__anext__()  # a poll answered while they were open
                assert client.stats().watches == subscribed(client) == 200
                for watch in watches:
                    await watch.aclose()
        finally:
            stop.set()
            await anyio.to_thread.run_sync(thread.join)
        assert client.stats().watches == 0
    assert not errors
    assert seen
    assert max(seen) <= 200


async def test_the_watch_count_follows_every_way_a_watch_ends(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """Snapshot joins, a vanished id, a watch freed before its first answer, a terminal
    event, the close: the int count is the subscribers every time."""
    done = sim.add_export(duration=10)
    other = sim.add_export(duration=1000)
    third = sim.add_export(duration=1000)
    client = make_client(sim, clock)
    async with client:

        def check(expected: int) -> None:
            assert client.stats().watches == subscribed(client) == expected

        a, b = client.watch(done), client.watch(done)
        await a.__aenter__()
        with anyio.fail_after(10):
            await a.__anext__()
        await b.__aenter__()  # the last snapshot, at once
        check(2)
        gone = client.watch("404")
        await gone.__aenter__()
        check(3)
        with anyio.fail_after(10):
            assert isinstance(await gone.__anext__(), vdgexport.ExportVanished)
        check(2)
        gc.disable()
        try:
            freed = client.watch(other)
            await freed.__aenter__()
            check(3)
            del freed  # dropped before its first answer: it leaves as it is freed
            check(2)
        finally:
            gc.enable()
        c = client.watch(third)
        await c.__aenter__()
        with anyio.fail_after(10):
            await c.__anext__()
        check(3)
        clock.advance(10)  # `done` completes: a and b end with their terminal event
        with anyio.fail_after(10):
            async for event in a:
                last = event
        assert isinstance(last, vdgexport.ExportCompleted)
        check(1)
        d = client.watch(other)
        await d.__aenter__()
        check(2)
    check(0)  # the close ended c and d
    for watch in (c, d):
        with pytest.raises(vdgexport.ClientClosedError):
            async for _ in watch:  # what it had queued, then the error
                pass

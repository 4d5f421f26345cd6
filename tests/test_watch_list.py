"""`Client.watch_list()`: the whole list of each poll, and one status request per tick for it
and every watch of the client (DESIGN §3, §7; TEAM "Public names").

Over real loopback HTTP (uvicorn serving the simulator) on asyncio and trio, except where a
test needs the event loop to hold every request (then `httpx.ASGITransport`). Requests are
stamped as they leave the client; the waits are the product's own pace, bounded by
``anyio.fail_after``, never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport import DeviceProgress, ExportList
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import serve
from ._stamped import Stamping, shortest_gap, status_requests
from .conftest import Tap, make_client
from .test_reliability import Failures

POLL = 0.05


@pytest.fixture
def stamped() -> Stamping:
    return Stamping()


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


def client_at(url: str, clock: ManualClock, **options: Any) -> vdgexport.Client:
    settings: dict[str, Any] = {
        "timeout": 5.0,
        "clock": clock,
        "poll_interval": POLL,
        "max_poll_interval": POLL,
        **options,
    }
    return vdgexport.Client(url, **settings)


async def next_list(lists: vdgexport.ListWatch, until: Any = None) -> ExportList:
    """The next list (the first one for which ``until(list)`` holds, if given)."""
    with anyio.fail_after(10):
        while True:
            exports = await lists.__anext__()
            if until is None or until(exports):
                return exports


async def take(watch: vdgexport.Watch, n: int) -> list[vdgexport.WatchEvent]:
    with anyio.fail_after(10):
        return [await watch.__anext__() for _ in range(n)]


@pytest.mark.parametrize("watched", [1, 5])
async def test_a_list_watch_and_id_watches_cost_one_status_request_per_tick(
    watched: int, url: str, stamped: Stamping, sim: SenseSimulator, clock: ManualClock
) -> None:
    """Without the hook, one id watch beside a list of one's own costs 2 requests a tick."""
    ids = [sim.add_export(duration=1000) for _ in range(8)]
    client = client_at(url, clock, transport=stamped)
    async with client, client.watch_list() as lists:
        watches = [client.watch(i) for i in ids[:watched]]
        for watch in watches:
            await watch.__aenter__()
        first = await next_list(lists)
        assert sorted(e.export_id for e in first) == sorted(ids)
        for watch in watches:
            await take(watch, 2)  # the first snapshot: status, then its device
        start = len(stamped.stamps)
        for step in range(1, 6):
            clock.advance(1)
            for watch in watches:
                [event] = await take(watch, 1)
                assert isinstance(event, DeviceProgress)
                assert event.progress == pytest.approx(0.1 * step)
            exports = await next_list(lists, lambda e, s=step: e[0].progress >= 0.1 * s - 1e-9)
            assert exports.get(ids[-1]) is not None  # unwatched exports are listed too
        ticks = status_requests(stamped.stamps[start:])
        assert client.stats().list_watches == 1
        for watch in watches:
            await watch.aclose()
    assert ticks
    assert not [s.query for s in ticks if s.per_id]  # one list request a tick
    assert shortest_gap(ticks) >= POLL * 0.9  # and at most one per poll_interval


async def test_a_new_list_watch_gets_the_last_list_at_once_with_no_request(
    url: str, stamped: Stamping, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=100)
    options = {"poll_interval": 30.0, "max_poll_interval": 30.0, "transport": stamped}
    async with client_at(url, clock, **options) as client:
        async with client.watch_list() as a:
            seen = await next_list(a)  # polled at once
            assert len(status_requests(stamped.stamps)) == 1
            async with client.watch_list() as b:
                assert await next_list(b) is seen
            assert len(status_requests(stamped.stamps)) == 1


async def test_closing_the_client_ends_its_list_watches(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=100)
    client = client_at(url, clock)
    async with client:
        lists = client.watch_list()
        await next_list(lists)
        ended: list[BaseException] = []

        async def consume() -> None:
            try:
                async for _ in lists:
                    pass
            except vdgexport.ClientClosedError as exc:
                ended.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(consume)
                await anyio.wait_all_tasks_blocked()
                await client.aclose()
        assert len(ended) == 1
        assert client.stats().list_watches == 0
        with pytest.raises(StopAsyncIteration):
            await lists.__anext__()
    with pytest.raises(vdgexport.ClientClosedError):
        client.watch_list()


async def test_a_list_watch_yields_nothing_during_an_outage_and_goes_on_after(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=1000)
    async with client_at(url, clock, outage_timeout=None) as client:
        async with client.watch_list() as lists:
            await next_list(lists)
            with Failures() as failures:
                sim.inject_random(1.0, faults=[Fault.STATUS])
                await failures.wait(3)
                assert lists._latest is None  # nothing to read
                clock.advance(10)
                sim.inject_random(0.0)
            exports = await next_list(lists)
            assert exports.get(eid) is not None
            assert exports[0].progress == pytest.approx(1.0)


async def test_a_list_watch_raises_after_outage_timeout(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=1000)
    async with client_at(url, clock, outage_timeout=0.2) as client:
        async with client.watch_list() as lists:
            await next_list(lists)
            sim.inject_random(1.0, faults=[Fault.STATUS])
            with pytest.raises(vdgexport.HTTPStatusError), anyio.fail_after(10):
                await lists.__anext__()
            assert client.stats().list_watches == 0


async def test_unsafe_xml_ends_the_list_watch_at_once(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=100)
    tap = Tap(sim)
    with serve(tap) as url:
        async with client_at(url, clock, outage_timeout=None) as client:
            lists = client.watch_list()
            await next_list(lists)
            tap.serve(b'<!DOCTYPE x [<!ENTITY a "b">]><result errorcode="0"/>', times=5)
            with pytest.raises(vdgexport.ProtocolError), anyio.fail_after(10):
                await lists.__anext__()


async def test_a_slow_list_consumer_gets_the_newest_list_and_no_backlog(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=1000)
    tap = Tap(sim)
    async with make_client(tap, clock) as client, client.watch_list() as lists:
        await next_list(lists)
        for _ in range(3):  # three new lists the consumer does not read
            clock.advance(10)
            await tap.requests(tap.count + 1)
        await tap.requests(tap.count + 1)  # and one more, answered by now
        await anyio.wait_all_tasks_blocked()
        newest = await next_list(lists)
        export = newest.get(eid)
        assert export is not None
        assert export.progress == pytest.approx(3.0)  # not 1 % or 2 %: the newest

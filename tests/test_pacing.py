"""Pacing (DESIGN §7): joins, restarts and outages never turn into bursts of requests.

Over real loopback HTTP (uvicorn), on asyncio and trio; requests are counted by the
simulator, which records every request it receives. The waits are the product's own pace
(``poll_interval``), bounded by ``anyio.fail_after``, never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport import DeviceProgress, ExportStatusChanged, ExportVanished, VanishReason
from vdgexport._pace import Pace
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve
from ._stamped import Stamping, shortest_gap, status_requests


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


def client_at(url: str, clock: ManualClock, **options: Any) -> vdgexport.Client:
    settings: dict[str, Any] = {"timeout": 5.0, "clock": clock, **options}
    return vdgexport.Client(url, **settings)


async def first_snapshot(watch: vdgexport.Watch, devices: int = 1) -> list[Any]:
    with anyio.fail_after(10):
        return [await watch.__anext__() for _ in range(1 + devices)]


async def test_a_new_watch_of_a_polled_id_gets_the_last_snapshot_with_no_request(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    clock.advance(10)
    async with client_at(url, clock, poll_interval=30.0, max_poll_interval=30.0) as client:
        first = client.watch(eid)
        await first.__aenter__()
        seen = await first_snapshot(first)
        assert sim.request_count == 1
        later = [client.watch(eid) for _ in range(39)]
        for watch in later:
            await watch.__aenter__()
            got = await first_snapshot(watch)
            assert [type(e) for e in got] == [ExportStatusChanged, DeviceProgress]
            assert got[1].progress == seen[1].progress == 10.0
            assert got[1].observed_at == seen[1].observed_at  # when the server said so
        assert sim.request_count == 1  # 40 subscribers, one request
        assert client.stats().watches == 40
        for watch in [first, *later]:
            await watch.aclose()


async def test_new_ids_joining_within_poll_interval_share_the_next_request(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=100) for _ in range(40)]
    async with client_at(url, clock, poll_interval=0.5, max_poll_interval=30.0) as client:
        first = client.watch(ids[0])
        await first.__aenter__()
        await first_snapshot(first)  # polled at once, by id
        assert sim.request_count == 1
        watches = [client.watch(i) for i in ids[1:]]
        async with anyio.create_task_group() as tg:
            for watch in watches:  # one after the other, the poller free to run between
                await watch.__aenter__()  # joins the next tick: no request now
                tg.start_soon(first_snapshot, watch)
                await anyio.wait_all_tasks_blocked()
            assert client.stats().requests == 1
        assert sim.request_count == client.stats().requests == 2  # one list request for 40
        assert "exportid" not in sim.requests[1].query
        for watch in [first, *watches]:
            await watch.aclose()


async def test_a_restart_confirms_at_most_8_missing_ids_per_tick(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=100) for _ in range(20)]
    async with client_at(url, clock, poll_interval=0.01, max_poll_interval=0.01) as client:
        watches = [client.watch(i) for i in ids]
        for watch in watches:
            await watch.__aenter__()
        with anyio.fail_after(10):
            for watch in watches:
                await first_snapshot(watch)
        before = sim.request_count
        sim.restart()
        with anyio.fail_after(10):
            for watch in watches:
                [event] = [e async for e in watch]
                assert isinstance(event, ExportVanished)
                assert event.reason is VanishReason.NOT_FOUND
        after = sim.requests[before:]
    confirmed = [r.query["exportid"] for r in after if "exportid" in r.query]
    assert sorted(confirmed) == sorted(ids)  # each missing id confirmed once
    per_tick: list[int] = []
    for request in after:
        if "exportid" not in request.query:
            per_tick.append(0)
        else:
            per_tick[-1] += 1
    assert per_tick[:3] == [8, 8, 4]  # never 20 at once


async def test_several_ids_cost_one_list_request_per_tick_however_long_the_list(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """F11: 5 watched ids among 300 listed were polled per id, 5 requests per tick."""
    ids = [sim.add_export(duration=1000) for _ in range(300)]
    stamped = Stamping()
    with serve(sim) as url:
        options = {"poll_interval": 0.05, "max_poll_interval": 0.05, "transport": stamped}
        async with client_at(url, clock, **options) as client:
            watches = [client.watch(i) for i in ids[:5]]
            for watch in watches:
                await watch.__aenter__()
            for watch in watches:
                await first_snapshot(watch)
            start = len(stamped.stamps)
            for step in range(1, 6):
                clock.advance(1)  # 0.1 % a step: every watch has news from the next tick
                for watch in watches:
                    event = await first_snapshot(watch, devices=0)
                    assert isinstance(event[0], DeviceProgress)
                    assert event[0].progress == pytest.approx(0.1 * step)
            ticks = status_requests(stamped.stamps[start:])
            for watch in watches:
                await watch.aclose()
    assert ticks
    assert not [s.query for s in ticks if s.per_id]  # whole-list requests only
    assert shortest_gap(ticks) >= 0.05 * 0.9  # at most one per poll_interval


def stretched_pace() -> Pace:
    pace = Pace(0.2, 60.0)
    assert not pace.join(0.0)  # the first id: polled at once (nothing was due yet)
    pace.start()
    pace.sent(0.0)
    pace.succeeded(True)
    assert pace.due == pytest.approx(0.2)  # an immediate poll is a tick
    for _ in range(12):  # nothing changes: the pace stretches
        pace.start()
        pace.sent(pace.due)
        pace.succeeded(False)
    assert pace.due - pace.last > 5.0
    return pace


def test_the_pace_after_a_join_is_poll_interval_even_when_stretched() -> None:
    pace = stretched_pace()
    assert pace.join(pace.last + 0.1)  # a new id: the next tick moves earlier,
    assert pace.due == pytest.approx(pace.last + 0.2)  # poll_interval after the last one
    assert not pace.join(pace.last + 0.15)  # no further move for the next joiner
    pace.start()
    pace.sent(pace.due)
    pace.succeeded(True)  # the new id's first answer is news
    assert pace.due - pace.last == pytest.approx(0.2)


def test_a_join_long_after_the_last_request_is_polled_at_once() -> None:
    pace = stretched_pace()
    late = pace.last + 1.0
    assert pace.join(late)
    assert pace.due == late


def test_a_join_does_not_cut_a_backoff_short() -> None:
    pace = Pace(0.2, 60.0)
    pace.start()
    pace.sent(0.0)
    pace.failed(0.05, 20.0)  # e.g. Retry-After: 20
    assert pace.due == pytest.approx(20.05)
    assert not pace.join(1.0)
    assert pace.due == pytest.approx(20.05)

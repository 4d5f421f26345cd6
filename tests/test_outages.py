"""What a service sees of its client: `stats()`, ConnectionLost / ConnectionRestored,
and a `wait_for_completion` timeout that says what timed out. Over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import anyio
import pytest

import vdgexport
from vdgexport import (
    ClientStats,
    ConnectionLost,
    ConnectionRestored,
    DeviceProgress,
    ExportStatusChanged,
    WatchEvent,
)
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import serve
from .test_reliability import Failures
from .test_reliability import fast_client as client_at


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


async def take(events: vdgexport.Watch, n: int) -> list[WatchEvent]:
    with anyio.fail_after(10):
        return [await events.__anext__() for _ in range(n)]


async def test_stats_count_requests_failures_and_watches(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    client = client_at(url, clock)
    async with client:
        assert client.stats() == ClientStats(requests=0, failures=0, watches=0, watched_ids=0)
        await client.get_export(eid)
        with pytest.raises(vdgexport.ExportNotFoundError):
            await client.get_export("404")  # an answer (-57), not a failure
        sim.inject(Fault.STATUS, status=503)
        sim.inject(Fault.MALFORMED)
        await client.get_export(eid)  # two failed attempts, then an answer
        stats = client.stats()
        assert (stats.requests, stats.failures) == (sim.request_count, 2) == (5, 2)
        async with client.watch(eid) as a, client.watch(eid) as b, client.watch("404") as c:
            await take(a, 2)
            await take(b, 2)
            await take(c, 1)  # vanished: it no longer counts
            stats = client.stats()
            assert (stats.watches, stats.watched_ids) == (2, 1)
    final = client.stats()  # a closed client keeps its counts
    assert 0 <= final.requests - sim.request_count <= 1  # a poll cut short by the close
    assert (final.failures, final.watches, final.watched_ids) == (2, 0, 0)


async def test_connection_lost_then_restored_once_per_outage(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client_at(url, clock, lost_after=10.0) as client, client.watch(eid) as first:
        await take(first, 2)
        with Failures() as failures:
            sim.inject_random(1.0, faults=[Fault.STATUS])  # every poll fails from now on
            await failures.wait(3)  # failing, but not for 10 s of the clock yet
        assert first._queue is None  # nothing to read
        clock.advance(11)
        [lost] = await take(first, 1)
        assert isinstance(lost, ConnectionLost)
        assert lost.export_id == eid
        assert lost.error.startswith("HTTPStatusError: HTTP 503")
        assert lost.failing_for >= timedelta(seconds=10)
        async with client.watch(eid) as joined:  # joining during the outage
            got = await take(joined, 3)
            assert [type(e) for e in got] == [ExportStatusChanged, DeviceProgress, ConnectionLost]
            clock.advance(5)
            sim.inject_random(0.0)  # the server answers again
            [restored] = await take(first, 1)
            [restored_too] = await take(joined, 1)
        assert isinstance(restored, ConnectionRestored)
        assert restored.down_for == restored_too.down_for  # type: ignore[union-attr]
        assert restored.down_for >= timedelta(seconds=16)
        clock.advance(10)  # moves: progress, and no second Lost or Restored
        [progress] = await take(first, 1)
        assert isinstance(progress, DeviceProgress)


async def test_lost_after_none_never_says_lost(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=10_000)
    async with client_at(url, clock, lost_after=None) as client, client.watch(eid) as events:
        await take(events, 2)
        sim.inject(Fault.STATUS, times=3)
        clock.advance(3600)
        [progress] = await take(events, 1)  # after the outage: the news, nothing else
        assert isinstance(progress, DeviceProgress)
        assert client.stats().failures == 3


async def test_wait_for_completion_timeout_names_the_id_and_the_time(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100, pending=1e9)
    async with client_at(url, clock) as client:
        with pytest.raises(TimeoutError, match=rf"export '{eid}' did not complete within 0.05 s"):
            await client.wait_for_completion(eid, timeout=0.05)
        assert client.stats().watches == 0

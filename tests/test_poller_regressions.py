"""Regressions of the poller found by attack (F7, ...), over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import vdgexport
from vdgexport import ConnectionLost, ConnectionRestored, ExportStatusChanged
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import serve
from .test_outages import client_at, take
from .test_reliability import Failures


async def drain(watch: vdgexport.Watch) -> None:
    async with watch:
        async for _ in watch:
            pass


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


async def test_a_watch_made_after_an_outage_ended_is_not_told_of_it(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client_at(url, clock, lost_after=10.0) as client:
        async with client.watch(eid) as first:
            await take(first, 2)
            with Failures() as failures:
                sim.inject_random(1.0, faults=[Fault.STATUS])
                await failures.wait(2)
            clock.advance(11)
            [lost] = await take(first, 1)
            assert isinstance(lost, ConnectionLost)
        # The only watch is left during the outage: nothing is polled. The server recovers.
        sim.inject_random(0.0)
        await client.get_export(eid)
        clock.advance(60)
        async with client.watch(eid) as later:
            got = await take(later, 2)
    assert not any(isinstance(e, (ConnectionLost, ConnectionRestored)) for e in got), got
    assert isinstance(got[0], ExportStatusChanged)


async def test_one_blip_does_not_end_a_watch_made_after_an_old_outage(
    url: str, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client_at(url, clock, outage_timeout=0.3) as client:
        sim.inject_random(1.0, faults=[Fault.STATUS])
        with pytest.raises(vdgexport.HTTPStatusError):
            await drain(client.watch(eid))  # ends after 0.3 s of failures (real time)
        sim.inject_random(0.0)
        await client.get_export(eid)
        # The old outage began over 0.3 s ago: a new watch inheriting it would end at once.
        async with client.watch(eid) as later:
            sim.inject(Fault.STATUS, status=503)  # one transient failure
            got = await take(later, 2)
    assert isinstance(got[0], ExportStatusChanged)
    assert not any(isinstance(e, (ConnectionLost, ConnectionRestored)) for e in got), got

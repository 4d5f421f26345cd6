"""The fleet's leader costs the VDG server one status request per tick (DESIGN §9, F6).

A real redis-server (skipped where absent), the simulator behind uvicorn on loopback, on
asyncio and trio. Requests are stamped as they leave the leader's client; the waits are
events read from the fleet, bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

import vdgexport
import vdgexport.fleet
from vdgexport import DeviceProgress
from vdgexport.testing import ManualClock, SenseSimulator

from ._redis import RedisServer, redis_server
from ._servers import serve
from ._stamped import Stamping, shortest_gap, status_requests

POLL = 0.05


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_the_leader_makes_one_status_request_per_tick(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """Its discovery used to list the exports beside the poller: two requests a tick."""
    ids = [sim.add_export(devices=1, duration=1000) for _ in range(3)]
    stamped = Stamping()
    with serve(sim) as url:
        client = vdgexport.Client(
            url,
            transport=stamped,
            clock=clock,
            timeout=5.0,
            poll_interval=POLL,
            max_poll_interval=POLL,
        )
        async with client, anyio.create_task_group() as tasks:

            async def lead() -> None:  # as `vdgexport publish --interval` sets both
                await vdgexport.fleet.publish(
                    client, redis.url, name="site", lease=2.0, list_interval=POLL
                )

            tasks.start_soon(lead)
            async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
                with anyio.fail_after(20):
                    seen: set[str] = set()
                    async for item in events:  # each export's first snapshot
                        if isinstance(item.event, DeviceProgress):
                            seen.add(item.event.export_id)
                        if seen == set(ids):
                            break
                    start = len(stamped.stamps)
                    for step in range(1, 6):
                        clock.advance(1)  # every export moves: news at the next tick
                        moved: set[str] = set()
                        async for item in events:
                            event = item.event
                            assert isinstance(event, DeviceProgress)
                            assert event.progress == pytest.approx(0.1 * step)
                            moved.add(event.export_id)
                            if moved == set(ids):
                                break
            ticks = status_requests(stamped.stamps[start:])
            tasks.cancel_scope.cancel()
    assert ticks
    assert not [s.query for s in ticks if s.per_id]  # the list, for every watch
    assert shortest_gap(ticks) >= POLL * 0.9  # and no list of its own beside it

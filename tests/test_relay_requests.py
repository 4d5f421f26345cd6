"""The relay's ``/api/events`` costs the VDG server one status request per tick (DESIGN §8).

The relay served by uvicorn on loopback, SSE subscribers over real HTTP, on asyncio and
trio; the relay's client polls the simulator in-process, each request stamped as it
arrives. The waits are events read from the streams, bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import itertools
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest

from ._relay import relay, sse

POLL = 0.05


async def test_api_events_subscribers_cost_one_status_request_per_tick() -> None:
    """Its discovery used to list beside the poller (every 2 s), which polled one id by id."""
    with relay(poll=POLL) as r:
        eid = r.sim.add_export(duration=1000)
        async with httpx.AsyncClient(timeout=10) as http, AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(sse(http, f"{r.url}/api/events")) for _ in range(3)
            ]
            with anyio.fail_after(20):
                for stream in streams:
                    first = [await anext(stream), await anext(stream)]
                    assert [e.type for e in first] == ["ExportStatusChanged", "DeviceProgress"]
                start = len(r.counter.times)
                for step in range(1, 6):
                    r.clock.advance(1)  # news at the next tick
                    for stream in streams:
                        event = await anext(stream)
                        assert (event.type, event.data["export_id"]) == ("DeviceProgress", eid)
                        assert event.data["progress"] == pytest.approx(0.1 * step)
            ticks = r.counter.times[start:]
            queries = r.counter.queries[start:]
    assert ticks
    assert not [q for q in queries if "exportid" in q]  # the list, serving the watch too
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert min(gaps, default=POLL) >= POLL * 0.9  # and no list of its own beside it

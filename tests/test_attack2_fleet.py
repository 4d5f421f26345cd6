"""Hostile review of the fleet and its relay (attack2, docs/review-findings.md G*), over a real
redis-server and the relay served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

import vdgexport
import vdgexport.fleet
from tests._redis import RedisServer, redis_server
from tests._relay import fleet_relay, read_until, sse
from tests.conftest import make_client
from tests.test_fleet import publisher, take
from vdgexport.testing import ManualClock, SenseSimulator


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_a_last_event_id_past_the_range_of_stream_ids_is_refused_or_reset(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """G1: a token of the right epoch whose entry id does not fit Redis's 64-bit numbers."""
    export_id = sim.add_export(duration=60)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            epoch = (await take(events, 1))[0].token.split(":")[1]
        too_big = [f"v1:{epoch}:18446744073709551616-0", f"v1:{epoch}:1-99999999999999999999"]
        for token in too_big:
            with pytest.raises(ValueError, match="not a fleet token"):
                vdgexport.fleet.subscribe(redis.url, name="site", since=token)
        largest = f"v1:{epoch}:18446744073709551615-18446744073709551615"  # fits: not stored
        with fleet_relay(redis.url) as relay:
            async with httpx.AsyncClient(timeout=15, base_url=relay) as http:
                one = await http.get(
                    f"/api/exports/{export_id}/events", headers={"Last-Event-ID": too_big[0]}
                )
                streams = []
                for token in [*too_big, largest]:
                    async with sse(http, "/api/events", {"Last-Event-ID": token}) as stream:
                        streams.append(await read_until(stream, lambda ev: len(ev) >= 2))
        tasks.cancel_scope.cancel()
    assert one.status_code == 400
    assert "not a fleet token" in one.json()["error"]
    for got in streams:  # the current state after a reset, never an error event
        assert [(e.type, e.data.get("export_id")) for e in got] == [
            ("reset", None),
            ("ExportStatusChanged", export_id),
        ]

"""Hostile review of the fleet and its relay (attack2, docs/review-findings.md G*), over a real
redis-server and the relay served by uvicorn on loopback."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import anyio.lowlevel
import coredis
import httpx
import pytest

import vdgexport
import vdgexport.fleet
from tests._redis import RedisServer, redis_server
from tests._relay import fleet_relay, read_until, relay_process, sse
from tests.conftest import make_client
from tests.test_fleet import publisher, take
from vdgexport.fleet import Publisher
from vdgexport.fleet._redis import Keys
from vdgexport.fleet._state import ExportState
from vdgexport.testing import ManualClock, SenseSimulator

KEYS = Keys.of("site")


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


async def _ended_state(sim: SenseSimulator, clock: ManualClock) -> tuple[str, str]:
    """A finished export's stored state (its id, its JSON), as a publisher writes it."""
    export_id = sim.add_export(devices=1, duration=1)
    state = ExportState.fresh()
    async with make_client(sim, clock) as client, client.watch(export_id) as watch:
        clock.advance(2)
        async for event in watch:
            state = state.after(event, watch.checkpoint())
    assert state.done
    return export_id, state.to_json()


async def _fill_fleet(redis: RedisServer, export_id: str, text: str, n: int) -> None:
    """A fleet holding ``n`` exports like ``export_id`` (an epoch, a stream, their states)."""
    mapping = {
        str(i): text.replace(f'"export_id": "{export_id}"', f'"export_id": "{i}"')
        for i in range(1000, 1000 + n)
    }
    async with coredis.Redis.from_url(redis.url, decode_responses=True) as r:
        await r.set(KEYS.epoch, "e1")
        await r.xadd(KEYS.stream, {"p": "e1", "k": "epoch"})
        await r.hset(KEYS.state, mapping)


class Gaps:
    """The longest time the event loop went without running a task that only yields."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def run(self) -> None:
        last = time.perf_counter()
        while True:
            await anyio.lowlevel.checkpoint()
            now = time.perf_counter()
            self.longest, last = max(self.longest, now - last), now

    @contextlib.asynccontextmanager
    async def measuring(self) -> AsyncIterator[Callable[[], float]]:
        """Measure the block; yields a function giving the block's duration, once ended."""
        self.longest, began, took = 0.0, time.perf_counter(), 0.0
        yield lambda: took
        took = time.perf_counter() - began
        await anyio.lowlevel.checkpoint()  # the ticker notes the gap before the last one


async def test_thousands_of_exports_in_the_fleet_never_hold_the_event_loop(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """G2: reading a big current state (relay routes, a new stream, a new leader) lets
    every other task of the process run; it does not stop them until it is read whole."""
    export_id, text = await _ended_state(sim, clock)
    n = 2000
    await _fill_fleet(redis, export_id, text, n)
    gaps = Gaps()
    held = {}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(gaps.run)
        async with gaps.measuring() as took:
            now = await vdgexport.fleet.snapshot(redis.url, name="site")
        held["snapshot"] = gaps.longest / took()
        async with gaps.measuring() as took:
            async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
                first = await take(events, 1)
        held["subscribe"] = gaps.longest / took()
        async with make_client(sim, clock) as client:
            async with gaps.measuring() as took:
                publishing = Publisher(client, redis.url, name="site", lease=30.0)
                tasks.start_soon(publishing.run)
                async with coredis.Redis.from_url(redis.url, decode_responses=True) as r:
                    with anyio.fail_after(30):  # the new leader read them, forgot them (unlisted)
                        while await r.hlen(KEYS.state) > 1:  # noqa: ASYNC110 - nothing to wait on
                            await anyio.sleep(0.01)
            held["lead"] = gaps.longest / took()
            tasks.cancel_scope.cancel()
    assert len(now.exports) == n
    assert first[0].event.export_id == "1000"
    # The longest stop of the other tasks is a small part of the whole read (not all of it).
    assert max(held.values()) < 0.4, held


async def test_a_refused_redis_password_is_named_on_healthz_never_shown() -> None:
    """G4: /healthz and the JSON routes of ``serve --redis`` said "Redis unreachable
    (ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception))" when Redis refused
    the password: the reason must name the refusal (and never the password)."""
    with redis_server(password="R1ghtPw") as redis:
        wrong = redis.url.replace("redis://", "redis://:Wr0ngPw@")
        with relay_process("--redis", wrong, "--name", "site", "--timeout", "5") as (_, url):
            async with httpx.AsyncClient(timeout=15, base_url=url) as http:
                health = await http.get("healthz")
                listed = await http.get("api/exports")
    assert (health.status_code, listed.status_code) == (503, 503)
    for text in (health.json()["reason"], listed.json()["error"]):
        assert "AuthenticationFailureError" in text
        assert "ExceptionGroup" not in text
        assert "Wr0ngPw" not in text


async def test_resuming_after_the_end_of_an_export_the_fleet_forgot_ends_at_once(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """G5: a browser's EventSource reconnects when a stream ends, with the terminal event's
    token; once the export has left the server's list (a PluginManager restart), the
    publisher forgets its state within a tick: the reconnect must still end at once (204),
    not stay open for ever."""
    export_id = sim.add_export(duration=60)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as ev:
            await take(ev, 1)  # the fleet knows it
        with fleet_relay(redis.url) as relay:
            async with httpx.AsyncClient(timeout=15, base_url=relay) as http:
                url = f"/api/exports/{export_id}/events"
                async with sse(http, url) as stream:
                    seen = await read_until(stream, lambda ev: len(ev) >= 2)
                    sim.remove_export(export_id)
                    seen += await read_until(stream, lambda ev: ev[-1].type == "ExportRemoved")
                sim.restart()  # the removed export leaves the list (DESIGN §1)
                async with coredis.Redis.from_url(redis.url, decode_responses=True) as r:
                    with anyio.fail_after(10):  # the removed export leaves the list: forgotten
                        while await r.hexists(KEYS.state, export_id):  # noqa: ASYNC110
                            await anyio.sleep(0.01)
                with anyio.fail_after(5):
                    again = await http.get(url, headers={"Last-Event-ID": seen[-1].id or ""})
                    async with vdgexport.fleet.subscribe(
                        redis.url, name="site", export_id=export_id, since=seen[-1].id
                    ) as events:
                        after = [item async for item in events]
        tasks.cancel_scope.cancel()
    assert again.status_code == 204  # EventSource stops reconnecting
    assert after == []

"""Fleet regressions from the hostile review (docs/review-findings.md), over a real redis-server."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import coredis
import httpx
import pytest

import vdgexport
import vdgexport.fleet
from tests._fleet import check_account
from tests._redis import RedisServer, free_port, redis_server
from tests.conftest import make_client
from tests.test_fleet import names, publisher, take, until
from vdgexport.fleet import FleetEvent
from vdgexport.fleet._redis import Keys, entry_order
from vdgexport.testing import ManualClock, SenseSimulator

KEYS = Keys.of("site")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def admin(redis: RedisServer) -> coredis.Redis[str]:
    return coredis.Redis.from_url(redis.url, decode_responses=True)


async def until_async(check: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    """Poll ``check`` (a look at Redis) until it holds (fails after ``within`` seconds)."""
    with anyio.fail_after(within):
        while not await check():  # noqa: ASYNC110 - what it waits for has no event to wait on
            await anyio.sleep(0.005)


async def written(r: coredis.Redis[str], export_id: str) -> int:
    """How many events of ``export_id`` the fleet has written (its stored state says)."""
    text = await r.hget(KEYS.state, export_id)
    return 0 if text is None else int(json.loads(text)["seq"])


async def test_an_id_reused_after_a_server_restart_is_published(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F5: after a PluginManager restart ids start again at 1 (DESIGN §1)."""
    first = sim.add_export(devices=1, duration=2)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=first) as ev:
            clock.advance(5)
            old = [item async for item in ev]
        assert names(old)[-1] == "ExportCompleted"
        sim.restart()  # the finished export is forgotten: it leaves the list, its state pruned
        async with admin(redis) as r:
            await until_async(lambda: _absent(r, first))
        again = sim.add_export(devices=1, duration=10)
        assert again == first  # the same id names a new export
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=again) as ev:
            got = await take(ev, 2)
            clock.advance(20)
            got += [item async for item in ev]
        tasks.cancel_scope.cancel()
    assert names(got)[:2] == ["ExportStatusChanged", "DeviceProgress"]
    assert names(got)[-1] == "ExportCompleted"
    check_account(got)


async def _absent(r: coredis.Redis[str], export_id: str) -> bool:
    return not await r.hexists(KEYS.state, export_id)


async def test_a_live_subscriber_that_falls_behind_the_trimming_gets_a_resync(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F12: a resync is allowed to be needless, a gap never (DESIGN §9)."""
    ids = [sim.add_export(devices=1, duration=1000) for _ in range(4)]
    async with admin(redis) as r:
        await r.config_set({"stream-node-max-entries": 2})  # trims at a fine grain
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:

        async def run() -> None:
            await vdgexport.fleet.publish(
                client, redis.url, name="site", lease=1.0, list_interval=0.01, retention=10
            )

        tasks.start_soon(run)
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            items = await take(events, 8)  # the current state: status + device, 4 exports
            cursor = items[-1].token.split(":")[2]
            async with admin(redis) as r:
                for step in range(1, 11):  # the subscriber reads nothing meanwhile
                    clock.advance(1.0)
                    await until_async(lambda n=2 + step: _all_written(r, ids, n))
                first = (await r.xrange(KEYS.stream, count=1))[0].identifier
            assert entry_order(first) > entry_order(cursor), "the subscriber's place was trimmed"
            items += await take(events, 8)
        tasks.cancel_scope.cancel()
    assert items[8].resync  # not the entries left after the trimmed ones
    check_account(items)
    assert [getattr(i.event, "progress", None) for i in items[9::2]] == [1.0] * 4


async def _all_written(r: coredis.Redis[str], ids: list[str], n: int) -> bool:
    return all([await written(r, i) >= n for i in ids])


async def test_redis_restored_from_an_older_snapshot_gives_no_gap(
    sim: SenseSimulator, clock: ManualClock, tmp_path: Path
) -> None:
    """F23: Redis restarted from its last RDB snapshot (Debian's default persistence) keeps
    the epoch and the leader's lease but loses the last writes: a subscriber who saw them
    resyncs, and what comes next continues what a new subscriber reads, never a gap."""
    eid = sim.add_export(devices=1, duration=1000)
    with redis_server(dump=tmp_path / "d.rdb") as redis:
        async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:

            async def run() -> None:  # a lease long enough to outlive the restart
                await vdgexport.fleet.publish(
                    client, redis.url, name="site", lease=30, list_interval=0.01
                )

            tasks.start_soon(run)
            sub = vdgexport.fleet.subscribe
            async with sub(redis.url, name="site", export_id=eid) as live, admin(redis) as r:
                seen = await take(live, 2)
                clock.advance(1)
                seen += await take(live, 1)
                await r.save()  # the snapshot: 3 events
                for _ in range(3):
                    clock.advance(1)
                    seen += await take(live, 1)  # written, not in the snapshot
                redis.restart()  # loads d.rdb: the same epoch, 3 events, the lease still ours
                clock.advance(1)  # the leader's next write finds the stream behind it
                async with sub(redis.url, name="site", export_id=eid) as late:
                    fresh = await take(late, 2)  # the current state
                    seen += await take(live, 2)  # the same, again
                    clock.advance(1)
                    fresh += await take(late, 1)
                    seen += await take(live, 1)
            tasks.cancel_scope.cancel()
    assert [i.resync for i in seen[6:]] == [True, False, False]
    check_account(seen)
    check_account(fresh)
    assert [i.event for i in seen[6:]] == [i.event for i in fresh]


@pytest.mark.parametrize("odd_id", ["\u00b2", "7" * 5000])
async def test_a_subscriber_reads_a_state_holding_any_export_id(
    odd_id: str, redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F13: ids are opaque strings (DESIGN §1); "²" is a digit to Python, not to int()."""
    sim.add_export(devices=1, duration=100)
    sim.add_export(devices=1, duration=100, export_id=odd_id)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with admin(redis) as r:
            await until_async(lambda: r.hexists(KEYS.state, odd_id))
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            got = await take(events, 4)
        tasks.cancel_scope.cancel()
    assert [i.event.export_id for i in got] == ["1", "1", odd_id, odd_id]


async def test_a_publisher_that_finds_its_own_token_in_the_lease_leads(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F15: a renew that reaches Redis after the leader's local deadline (a slow Redis or
    network) extends the lease with the token of the term it stepped down from. Simulated:
    the lease is taken, then carries that token again."""
    sim.add_export(devices=1, duration=100)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        pub = vdgexport.fleet.Publisher(
            client, redis.url, name="site", lease=1.0, list_interval=0.01
        )
        tasks.start_soon(pub.run)
        await until(lambda: pub.leading)
        async with admin(redis) as r:
            await r.set(KEYS.lease, "another", px=5000)
            await until(lambda: not pub.leading)  # its renew found the lease taken
            old = pub._token
            await r.set(KEYS.lease, old, px=5000)  # the late renew of its own lease
            await until(lambda: pub.leading, within=2)  # not after the 5 s of that lease
            assert await r.get(KEYS.lease) != old  # a new term: the old one's writes fenced
        tasks.cancel_scope.cancel()


async def test_an_export_subscription_resumed_after_its_terminal_event_ends(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F17: resumed after its terminal event it ends at once, nothing repeated: a browser's
    EventSource reconnects with that token whenever a stream ends."""
    eid = sim.add_export(devices=1, duration=2)
    other = sim.add_export(devices=1, duration=100)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=eid) as ev:
            seen = await take(ev, 2)
            clock.advance(5)
            seen += [item async for item in ev]
        assert names(seen)[-1] == "ExportCompleted"
        sub = vdgexport.fleet.subscribe
        async with sub(redis.url, name="site", export_id=other) as ev:
            await take(ev, 2)  # entries of another export after the terminal one
            clock.advance(1)
            await take(ev, 1)
        with anyio.fail_after(5):
            async with sub(redis.url, name="site", export_id=eid, since=seen[-1].token) as again:
                rest = [item async for item in again]
            async with sub(redis.url, name="site", export_id=eid, since=seen[-2].token) as again:
                last = [item async for item in again]
        tasks.cancel_scope.cancel()
    assert rest == []
    assert last == seen[-1:]  # resumed before it: the terminal event, then the end


async def test_two_tasks_reading_one_subscription_see_no_entry_twice(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    """F21: a Watch may be awaited by several tasks; so may a Subscription."""
    for _ in range(3):
        sim.add_export(devices=1, duration=100)
    got: list[FleetEvent] = []
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            got += await take(events, 6)  # the current state

            async def reader() -> None:
                async for item in events:
                    got.append(item)

            async with anyio.create_task_group() as readers:
                readers.start_soon(reader)
                readers.start_soon(reader)
                for step in range(1, 11):
                    clock.advance(1.0)
                    await until(lambda n=6 + 3 * step: len({i.token for i in got}) >= n)
                readers.cancel_scope.cancel()
        tasks.cancel_scope.cancel()
    assert len({i.token for i in got}) == len(got), "an entry delivered twice"
    check_account(got)


SECRET = "R3disPW"


async def test_a_redis_password_in_the_query_is_never_shown_nor_anything_left_unclosed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """F8: coredis logs in with ``?password=`` (any connection parameter comes from the query).
    F9: every failed attempt to reach Redis left coredis memory streams for the garbage
    collector to warn about (ResourceWarning, an error under ``-W error``)."""
    url = f"redis://127.0.0.1:{free_port()}/0?password={SECRET}"
    caplog.set_level(logging.DEBUG)
    sub = vdgexport.fleet.subscribe(url, name="s")
    shown = [repr(sub)]
    with anyio.move_on_after(0.3):
        async with sub:
            async for _ in sub:
                pass
    transport = httpx.MockTransport(lambda r: httpx.Response(500))
    async with vdgexport.Client("http://vdg.test", transport=transport) as client:
        pub = vdgexport.fleet.Publisher(client, url, name="s")
        shown.append(repr(pub))
        with anyio.move_on_after(0.3):
            await pub.run()
    shown += [r.getMessage() for r in caplog.records]
    assert any("unreachable" in s for s in shown)
    assert not [s for s in shown if SECRET in s]
    gc.collect()  # what was left unclosed warns now, in this test


async def test_a_fleet_logs_in_with_a_password_in_the_query_and_never_shows_it(
    sim: SenseSimulator, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """F8 over a real redis-server that requires the password: it is the one in the query."""
    caplog.set_level(logging.DEBUG)
    sim.add_export(devices=1, duration=10)
    with redis_server(password=SECRET) as redis:
        url = f"{redis.url}?password={SECRET}"
        async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
            pub = vdgexport.fleet.Publisher(client, url, name="site", lease=1.0, list_interval=0.01)
            tasks.start_soon(pub.run)
            async with vdgexport.fleet.subscribe(url, name="site") as events:
                got = await take(events, 2)
                shown = [repr(pub), repr(events)]
            tasks.cancel_scope.cancel()
    assert names(got) == ["ExportStatusChanged", "DeviceProgress"]
    shown += [r.getMessage() for r in caplog.records]
    assert any("leading" in s for s in shown)
    assert not [s for s in shown if SECRET in s]

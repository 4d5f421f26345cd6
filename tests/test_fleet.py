"""The fleet in one process: publish and subscribe through a real redis-server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import coredis
import pytest

import vdgexport
import vdgexport.fleet
from tests._redis import RedisServer, redis_server
from tests.conftest import make_client
from vdgexport.cli.publish import find_error
from vdgexport.fleet import FleetEvent, Publisher
from vdgexport.fleet._redis import Keys
from vdgexport.testing import ManualClock, SenseSimulator

LEASE = 1.0


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def take(events: AsyncIterator[FleetEvent], n: int) -> list[FleetEvent]:
    got: list[FleetEvent] = []
    with anyio.fail_after(10):
        async for item in events:
            got.append(item)
            if len(got) == n:
                break
    return got


def names(items: list[FleetEvent]) -> list[str]:
    return [type(i.event).__name__ for i in items]


async def test_a_subscriber_sees_the_current_state_then_live_events_to_the_end(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    export_id = sim.add_export(devices=2, duration=10)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as events:
            first = await take(events, 3)
            assert names(first) == ["ExportStatusChanged", "DeviceProgress", "DeviceProgress"]
            assert all(i.event.export_id == export_id and not i.resync for i in first)
            clock.advance(20)
            rest = [item async for item in events]
        tasks.cancel_scope.cancel()
    assert names(rest)[-1] == "ExportCompleted"
    assert len({i.token for i in first + rest}) == len(first + rest)


def publisher(client: vdgexport.Client, url: str, name: str = "site"):  # type: ignore[no-untyped-def]
    async def run() -> None:
        await vdgexport.fleet.publish(client, url, name=name, lease=LEASE, list_interval=0.01)

    return run


async def until(check: Callable[[], bool], within: float = 10) -> None:
    """Poll ``check`` until it holds (fails after ``within`` seconds)."""
    with anyio.fail_after(within):
        while not check():  # noqa: ASYNC110 - what it waits for has no event to wait on
            await anyio.sleep(0.005)


async def test_a_resumed_subscription_repeats_nothing_and_loses_nothing(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    export_id = sim.add_export(devices=1, duration=10)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        sub = vdgexport.fleet.subscribe
        async with sub(redis.url, name="site", export_id=export_id) as whole:
            async with sub(redis.url, name="site", export_id=export_id) as part:
                seen = await take(whole, 2)
                read = await take(part, 2)
                clock.advance(3)
                seen += await take(whole, 1)
                read += await take(part, 1)
                clock.advance(3)
                seen += await take(whole, 1)  # written while ``part`` is away
            clock.advance(10)
            seen += [item async for item in whole]
        async with sub(redis.url, name="site", export_id=export_id, since=read[-1].token) as again:
            read += [item async for item in again]
        tasks.cancel_scope.cancel()
    assert [i.event for i in read] == [i.event for i in seen]
    assert read[3:] == seen[3:]  # after the resume, the very same entries, tokens and all
    assert names(seen)[-1] == "ExportCompleted"
    assert not any(i.resync for i in seen)


async def test_redis_restarted_without_persistence_gives_a_resync_and_the_current_state(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=[10, 20])
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site") as live:
            before = await take(live, 3)
            clock.advance(4)
            before += await take(live, 2)
            redis.restart()
            after = await take(live, 3)
            async with vdgexport.fleet.subscribe(
                redis.url, name="site", since=before[-1].token
            ) as late:
                again = await take(late, 3)
        tasks.cancel_scope.cancel()
    for items in (after, again):
        assert [i.resync for i in items] == [True, False, False]
        assert names(items) == ["ExportStatusChanged", "DeviceProgress", "DeviceProgress"]
        assert [getattr(i.event, "progress", None) for i in items[1:]] == [40.0, 20.0]
    assert after[0].token.split(":")[1] != before[0].token.split(":")[1]  # a new epoch


async def test_a_leader_that_lost_its_lease_writes_nothing_and_stands_by(
    redis: RedisServer,
    sim: SenseSimulator,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "vdgexport.fleet")
    sim.add_export(devices=1, duration=10)
    keys = Keys.of("site")
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        leader = Publisher(client, redis.url, name="site", lease=LEASE, list_interval=0.01)
        tasks.start_soon(leader.run)
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            seen = await take(events, 2)
            thief = coredis.Redis.from_url(redis.url, decode_responses=True)
            async with thief:
                await thief.set(keys.lease, "thief", px=60_000)
                length = await thief.xlen(keys.stream)
                clock.advance(3)  # a change the leader may no longer write
                await until(lambda: not leader.leading)
                await until(lambda: "standing by" in caplog.text)
                assert await thief.xlen(keys.stream) == length
                await thief.delete([keys.lease])  # the thief leaves: the publisher leads again
                clock.advance(10)
                seen += [item async for item in until_terminal(events)]
        tasks.cancel_scope.cancel()
    assert "lost the lead" in caplog.text
    progress = [i.event.progress for i in seen if isinstance(i.event, vdgexport.DeviceProgress)]
    assert progress == sorted(set(progress))  # each change once, in order
    assert progress[-1] == 100.0
    assert names(seen)[-1] == "ExportCompleted"


async def until_terminal(events: AsyncIterator[FleetEvent]) -> AsyncIterator[FleetEvent]:
    with anyio.fail_after(10):
        async for item in events:
            yield item
            if isinstance(item.event, vdgexport.TerminalEvent):  # type: ignore[arg-type]
                return


async def test_a_subscriber_waits_for_a_publisher_and_for_its_export(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id="2") as events:
            tasks.start_soon(publisher(client, redis.url))
            sim.add_export(duration=5)
            await until(lambda: True)
            second = sim.add_export(duration=5)
            clock.advance(10)
            got = [item async for item in events]
        tasks.cancel_scope.cancel()
    assert {i.event.export_id for i in got} == {second}
    assert names(got)[-1] == "ExportCompleted"


def test_bad_arguments_are_refused_at_once() -> None:
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match="not a fleet token"):
        vdgexport.fleet.subscribe(url, name="site", since="v1:abc")
    with pytest.raises(ValueError, match="fleet name"):
        vdgexport.fleet.subscribe(url, name="a{b}")
    with pytest.raises(ValueError, match="not a Redis URL"):
        vdgexport.fleet.subscribe("http://user:secret@host", name="site")
    with pytest.raises(ValueError, match="not a Redis URL") as info:
        vdgexport.fleet.subscribe("http://user:secret@host", name="site")
    assert "secret" not in str(info.value)


async def test_a_trimmed_token_gives_a_resync_and_the_current_state(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    admin = coredis.Redis.from_url(redis.url, decode_responses=True)
    async with admin:
        await admin.config_set({"stream-node-max-entries": 2})  # trims at a fine grain
    export_id = sim.add_export(devices=1, duration=100)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:

        async def run() -> None:
            await vdgexport.fleet.publish(
                client, redis.url, name="site", retention=3, lease=LEASE, list_interval=0.01
            )

        tasks.start_soon(run)
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            old = (await take(events, 2))[-1].token
            for _ in range(8):  # eight changes, more than the stream keeps
                clock.advance(1)
                await take(events, 1)
        async with vdgexport.fleet.subscribe(redis.url, name="site", since=old) as events:
            again = await take(events, 2)
        tasks.cancel_scope.cancel()
    assert [i.resync for i in again] == [True, False]
    assert names(again) == ["ExportStatusChanged", "DeviceProgress"]
    assert again[1].event.export_id == export_id
    assert again[1].event.progress == 8.0  # type: ignore[union-attr]


async def test_publish_ends_when_its_client_is_closed(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=10)
    caught: BaseException | None = None
    async with make_client(sim, clock) as client:
        leader = Publisher(client, redis.url, name="site", lease=LEASE, list_interval=0.01)

        async def lead_then_close() -> None:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(leader.run)
                await until(lambda: leader.leading)
                await client.aclose()

        try:
            with anyio.fail_after(10):
                await lead_then_close()
        except Exception as exc:
            caught = exc
    assert caught is not None
    assert find_error(caught, (vdgexport.ClientClosedError,)) is not None


async def test_a_subscription_must_be_entered(redis: RedisServer) -> None:
    events = vdgexport.fleet.subscribe(redis.url, name="site")
    with pytest.raises(RuntimeError, match="async with"):
        await events.__anext__()


async def test_a_snapshot_says_whether_a_publisher_leads_and_lists_the_exports(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    empty = await vdgexport.fleet.snapshot(redis.url, name="site")
    assert (empty.epoch, empty.leading, empty.exports) == (None, False, ())
    ids = [sim.add_export(duration=10), sim.add_export(duration=20)]
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
            await take(events, 4)
        now = await vdgexport.fleet.snapshot(redis.url, name="site")
        one = await vdgexport.fleet.snapshot(redis.url, name="site", export_id=ids[1])
        none = await vdgexport.fleet.snapshot(redis.url, name="site", export_id="999")
        tasks.cancel_scope.cancel()
    assert now.leading
    assert now.epoch is not None
    assert [e.export_id for e in now.exports] == ids
    assert one.exports == now.exports[1:]  # only the export asked for
    assert (none.epoch, none.exports) == (now.epoch, ())


async def test_the_current_state_and_the_snapshot_show_the_progress_of_the_last_events(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    export_id = sim.add_export(devices=2, duration=100)
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(publisher(client, redis.url))
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as events:
            await take(events, 3)  # the export at 0 %
            clock.advance(50)
            moved = await take(events, 2)  # both devices at 50 %
        async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as events:
            first = await take(events, 3)
        now = await vdgexport.fleet.snapshot(redis.url, name="site")
        tasks.cancel_scope.cancel()
    progress = {(e.server_id, e.device_id): e.progress for e in (i.event for i in moved)}
    assert min(progress.values()) > 0
    status = first[0].event
    assert isinstance(status, vdgexport.ExportStatusChanged)
    # the status event of a new subscriber carries the export as it is now, not as it started
    assert {d.key: d.progress for d in status.export.devices} == progress
    assert {d.key: d.progress for d in now.exports[0].devices} == progress
    assert status.export.progress == now.exports[0].progress == sum(progress.values()) / 2


async def test_a_leader_that_cannot_reach_redis_says_so_before_its_lease_ends(
    redis: RedisServer, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export(duration=100)
    lease = 6.0  # renewed every 2 s: the first renewal after the stop fails well before 6 s
    async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:
        pub = Publisher(client, redis.url, name="site", lease=lease)
        tasks.start_soon(pub.run)
        await until(lambda: pub.leading and pub.reachable is True)
        redis.stop()
        stopped = anyio.current_time()
        await until(lambda: pub.reachable is False, within=lease)
        # /healthz of `publish --metrics-port` reads `reachable`: unhealthy at the first
        # failed renewal, not only once the lease has run out
        assert anyio.current_time() - stopped < lease * 2 / 3
        tasks.cancel_scope.cancel()


async def test_a_snapshot_of_a_state_it_cannot_read_is_a_vdg_error_naming_the_export(
    redis: RedisServer,
) -> None:
    keys = Keys.of("site")
    admin = coredis.Redis.from_url(redis.url, decode_responses=True)
    async with admin:
        await admin.set(keys.epoch, "e")
        await admin.xadd(keys.stream, {"p": "e"})
        await admin.hset(keys.state, {"7": "{not json"})
    with pytest.raises(vdgexport.VdgError, match="fleet state of export '7'"):
        await vdgexport.fleet.snapshot(redis.url, name="site")

"""Hypothesis: a generated schedule of leader kills, pauses, Redis restarts and restores of an
older snapshot never makes a subscriber see an event twice or miss one.

Publishers run in this process, each with its own client and its own TCP proxy to Redis:
a kill cancels the leader at once (its lease stays until it lapses, as after SIGKILL); a
pause freezes its proxy past the lease, so that what it sent meanwhile reaches Redis late,
after the takeover, as from a process that was stopped and continued. A restart comes
back empty; a restore comes back with the last ``snapshot`` (``SAVE``), losing what was
written since, as Redis with RDB persistence after a crash.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import coredis
import pytest
from anyio.abc import ByteReceiveStream, ByteSendStream, SocketStream
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import vdgexport
import vdgexport.fleet
from tests._fleet import check_account
from tests._redis import REDIS_SERVER, RedisServer
from tests.conftest import make_client
from tests.test_fleet import until
from vdgexport.fleet import FleetEvent, Publisher
from vdgexport.testing import ManualClock, SenseSimulator

LEASE = 0.5
OPS = ["kill", "pause", "restart", "snapshot", "restore"]

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


class Proxy:
    """A TCP proxy to Redis that can be frozen: nothing passes until it thaws."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._thawed = anyio.Event()
        self._thawed.set()

    def freeze(self) -> None:
        self._thawed = anyio.Event()

    def thaw(self) -> None:
        self._thawed.set()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started(self.port)
            await listener.serve(self._connection)

    async def _connection(self, downstream: SocketStream) -> None:
        async with downstream:
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.target)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tasks:
                tasks.start_soon(self._pump, downstream, upstream, tasks.cancel_scope)
                tasks.start_soon(self._pump, upstream, downstream, tasks.cancel_scope)

    async def _pump(
        self, source: ByteReceiveStream, sink: ByteSendStream, scope: anyio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                await self._thawed.wait()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        scope.cancel()


@dataclass
class Member:
    """One publisher of the fleet, its proxy and the scope that kills it."""

    publisher: Publisher
    proxy: Proxy
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


async def run_schedule(ops: list[str]) -> list[list[FleetEvent]]:
    """What each subscriber read: one from the start, and one more from each restore on."""
    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    exports = [sim.add_export(duration=[6, 12]), sim.add_export(duration=9)]
    folder = tempfile.TemporaryDirectory()
    dump = Path(folder.name) / "dump.rdb"
    redis = RedisServer(dump)
    redis.start()
    seen: list[FleetEvent] = []
    accounts = [seen]
    try:
        async with make_client(sim, clock) as client, anyio.create_task_group() as tasks:

            async def join() -> Member:
                proxy = Proxy(redis.port)
                port = await tasks.start(proxy.serve)
                url = f"redis://127.0.0.1:{port}/0"
                member = Member(
                    Publisher(client, url, name="site", lease=LEASE, list_interval=0.01), proxy
                )

                async def run() -> None:
                    with member.scope:
                        await member.publisher.run()

                tasks.start_soon(run)
                return member

            async def read(into: list[FleetEvent]) -> None:
                async with vdgexport.fleet.subscribe(redis.url, name="site") as events:
                    async for item in events:
                        into.append(item)  # noqa: PERF401 - it grows while this runs

            members = [await join(), await join()]
            tasks.start_soon(read, seen)

            def leader() -> Member | None:
                return next((m for m in members if m.publisher.leading), None)

            await until(lambda: leader() is not None)
            saved = 0
            for op in ops:
                clock.advance(1)
                await until(lambda: leader() is not None)
                current = leader()
                assert current is not None
                if op == "kill":
                    current.scope.cancel()
                    members.remove(current)
                    members.append(await join())
                elif op == "pause":
                    current.proxy.freeze()
                    clock.advance(1)  # it sends this change, which arrives after the takeover
                    await until(lambda p=current: (m := leader()) is not None and m is not p)
                    clock.advance(1)
                    current.proxy.thaw()
                elif op == "snapshot":
                    async with coredis.Redis.from_url(redis.url) as admin:
                        await admin.save()
                    saved = len(seen)
                elif op == "restore":  # once the subscriber read what the snapshot lacks
                    await until(lambda n=saved: len(seen) > n or finished(seen, exports))
                    redis.restart()  # from the last snapshot: what came since is lost
                    accounts.append(late := [])
                    tasks.start_soon(read, late)  # it reads the state Redis kept
                    await until(lambda into=late: bool(into))
                else:
                    dump.unlink(missing_ok=True)
                    redis.restart()  # empty
            clock.advance(30)
            await until(lambda: all(finished(a, exports) for a in accounts), within=30)
            tasks.cancel_scope.cancel()
    finally:
        redis.stop()
        folder.cleanup()
    return accounts


def finished(seen: list[FleetEvent], exports: list[str]) -> bool:
    """Whether, since the last resync, every export has reached its terminal event."""
    last = max((i for i, item in enumerate(seen) if item.resync), default=0)
    done = {
        item.event.export_id
        for item in seen[last:]
        if isinstance(item.event, vdgexport.ExportCompleted)
    }
    return done == set(exports)


@settings(
    max_examples=int(os.environ.get("FLEET_EXAMPLES", "4")),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each run is seconds
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=4))
@example(ops=["snapshot", "restore"])
async def test_no_schedule_of_failures_repeats_or_loses_an_event(ops: list[str]) -> None:
    for seen in await run_schedule(ops):
        check_account(seen)

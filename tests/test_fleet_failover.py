"""Failover between real publisher processes (``vdgexport publish``), over real sockets:
the simulator behind uvicorn, a real redis-server, SIGKILL and SIGSTOP."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

import vdgexport
import vdgexport.fleet
from tests._fleet import PublisherProcess, check_account
from tests._redis import RedisServer, redis_server
from tests._servers import Recorder, basic, serve
from vdgexport.fleet import FleetEvent
from vdgexport.testing import ManualClock, SenseSimulator

LEASE = 1.0
INTERVAL = 0.05


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def recorder(sim: SenseSimulator) -> Recorder:
    return Recorder(sim)


@pytest.fixture
def vdg_url(recorder: Recorder) -> Iterator[str]:
    with serve(recorder) as url:
        yield url


@pytest.fixture
def start(vdg_url: str, redis: RedisServer) -> Iterator[type[PublisherProcess]]:
    started: list[PublisherProcess] = []

    class Started(PublisherProcess):
        def __init__(self, *, user: str) -> None:
            super().__init__(vdg_url, redis.url, user=user, lease=LEASE, interval=INTERVAL)
            started.append(self)

    yield Started
    for publisher in started:
        publisher.close()


def polled_by(recorder: Recorder, since: int = 0) -> set[str | None]:
    """Who sent the requests from the ``since``-th on (by their Basic credentials)."""
    users = {basic(u, "pw"): u for u in ("a", "b")}
    return {users.get(a or "", a) for a in recorder.authorizations[since:]}


async def read_until(
    events: AsyncIterator[FleetEvent], done: object, into: list[FleetEvent]
) -> None:
    """Read into ``into`` until an event satisfies ``done`` (fails after 15 s)."""
    with anyio.fail_after(15):
        async for item in events:
            into.append(item)
            if done(item.event):  # type: ignore[operator]
                return


def at(progress: float) -> object:
    return lambda e: isinstance(e, vdgexport.DeviceProgress) and e.progress >= progress


def ended(event: vdgexport.WatchEvent) -> bool:
    return isinstance(event, (vdgexport.ExportCompleted, vdgexport.ExportRemoved))


@pytest.fixture
async def pair(
    sim: SenseSimulator, start: type[PublisherProcess]
) -> tuple[str, PublisherProcess, PublisherProcess]:
    """An export of two devices, publisher ``a`` leading, then ``b`` standing by."""
    export_id = sim.add_export(duration=[10, 20])
    a = start(user="a")
    await a.says("leading")
    b = start(user="b")
    await b.says("standing by")
    return export_id, a, b


@pytest.mark.slow
async def test_a_killed_leader_is_replaced_and_the_subscriber_misses_nothing(
    redis: RedisServer,
    clock: ManualClock,
    recorder: Recorder,
    pair: tuple[str, PublisherProcess, PublisherProcess],
) -> None:
    (export_id, a, b), seen = pair, list[FleetEvent]()
    async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as events:
        clock.advance(3)
        await read_until(events, at(30), seen)
        assert polled_by(recorder) == {"a"}  # the standby never polls
        before = len(recorder.authorizations)
        a.signal(signal.SIGKILL)
        clock.advance(3)  # a change while nobody leads
        await b.says("leading", within=LEASE + 5)
        await read_until(events, at(60), seen)
        clock.advance(20)
        await read_until(events, ended, seen)
    assert polled_by(recorder, before) <= {"a", "b"}
    assert "b" in polled_by(recorder, before)
    check_account(seen)
    assert isinstance(seen[-1].event, vdgexport.ExportCompleted)
    final = [e.event.progress for e in seen if isinstance(e.event, vdgexport.DeviceProgress)]
    assert final.count(100.0) == 2


@pytest.mark.slow
async def test_a_paused_leader_writes_nothing_after_the_takeover_and_stands_by(
    redis: RedisServer,
    clock: ManualClock,
    recorder: Recorder,
    pair: tuple[str, PublisherProcess, PublisherProcess],
) -> None:
    (export_id, a, b), seen = pair, list[FleetEvent]()
    async with vdgexport.fleet.subscribe(redis.url, name="site", export_id=export_id) as events:
        clock.advance(2)
        await read_until(events, at(20), seen)
        a.signal(signal.SIGSTOP)
        await b.says("leading", within=LEASE + 5)
        clock.advance(2)
        await read_until(events, at(40), seen)
        mark = len(a.lines)
        a.signal(signal.SIGCONT)
        clock.advance(2)  # the paused leader's watch sees this too, but may not write it
        await a.says("standing by", after=mark)
        since = len(recorder.authorizations)
        clock.advance(20)
        await read_until(events, ended, seen)
    assert a.said("lost the lead", after=mark) is not None
    assert polled_by(recorder, since) == {"b"}  # standing by: it no longer polls
    check_account(seen)  # nothing it saw after waking was written twice
    assert isinstance(seen[-1].event, vdgexport.ExportCompleted)


@pytest.mark.slow
async def test_publish_rides_out_an_unreachable_redis_and_never_shows_its_password(
    vdg_url: str, sim: SenseSimulator
) -> None:
    sim.add_export(duration=10)
    server = RedisServer()  # not started yet: nothing listens on its port
    url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
    publisher = PublisherProcess(vdg_url, url, user="a", lease=LEASE, interval=INTERVAL)
    try:
        found = await publisher.says("Redis at")
        assert f"redis://:***@127.0.0.1:{server.port}/0 unreachable" in publisher.lines[found]
        server.start()
        try:
            await publisher.says("leading", after=found)
        finally:
            server.stop()
        await publisher.says("Redis at", after=found + 1)  # gone again: said once more
    finally:
        publisher.close()
    text = "\n".join(publisher.lines)
    assert "hunter2" not in text
    assert "Traceback" not in text


def test_publish_without_redis_or_name_is_bad_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vdgexport.cli import main

    assert main(["publish", "--url", "http://127.0.0.1:1", "--name", "site"]) == 2
    assert "--redis" in capsys.readouterr().err
    code = main(["publish", "--url", "http://127.0.0.1:1", "--redis", "http://x", "--name", "s"])
    assert code == 1
    assert "not a Redis URL" in capsys.readouterr().err


@pytest.mark.slow
async def test_publish_serves_its_metrics_and_health(
    vdg_url: str, redis: RedisServer, sim: SenseSimulator
) -> None:
    sim.add_export(duration=10)
    publisher = PublisherProcess(
        vdg_url, redis.url, user="a", lease=LEASE, interval=INTERVAL, extra=["--metrics-port", "0"]
    )
    try:
        line = publisher.lines[await publisher.says("metrics at")]
        base = line.split("metrics at ", 1)[1].split("/metrics", 1)[0]
        await publisher.says("leading")
        async with httpx.AsyncClient(base_url=base) as http:
            health = await http.get("/healthz")
            assert (health.status_code, health.json()["role"]) == (200, "leading")
            metrics = (await http.get("/metrics")).text
            assert "vdgexport_leader 1.0" in metrics
            redis.stop()
            await publisher.says("Redis at")
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert "Redis unreachable" in health.json()["reason"]
    finally:
        publisher.close()


@pytest.mark.slow
async def test_a_stopped_leader_hands_its_lease_to_the_standby_at_once(
    vdg_url: str, redis: RedisServer, sim: SenseSimulator
) -> None:
    sim.add_export(duration=100)
    lease = 6.0  # renewed every 2 s: a lease left to run out lasts 4 s or more after a stop
    a = PublisherProcess(vdg_url, redis.url, user="a", lease=lease, interval=INTERVAL)
    b: PublisherProcess | None = None
    try:
        await a.says("leading")
        b = PublisherProcess(vdg_url, redis.url, user="b", lease=lease, interval=INTERVAL)
        await b.says("standing by")
        a.signal(signal.SIGTERM)
        stopped = anyio.current_time()
        await b.says("leading", within=lease)
        # the standby looks at least every third of a lease (2 s): it finds the lease free
        assert anyio.current_time() - stopped < lease * 0.6
        assert a.process.wait(timeout=10) == 0
        assert a.said("stopped") is not None
    finally:
        a.close()
        if b is not None:
            b.close()

"""SyncClient: the blocking facade, over real loopback HTTP, on both portal backends."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

import vdgexport
from vdgexport import (
    ClientClosedError,
    DeviceProgress,
    DeviceSpan,
    ExportCompleted,
    ExportNotFoundError,
    ExportRemoved,
    ExportStatus,
    ExportStatusChanged,
    SyncClient,
)
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base_url:
        yield base_url


@pytest.fixture
def client(url: str, backend: str) -> Iterator[SyncClient]:
    with SyncClient(url, backend=backend, poll_interval=0.001, max_poll_interval=0.004) as c:
        yield c


def test_the_one_shot_calls_block_and_return_what_client_returns(
    client: SyncClient, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(devices=2, duration=10)
    assert client.server_info().version == "2.8.0"
    assert [e.export_id for e in client.list_exports()] == [eid]
    assert client.get_export(eid).status is ExportStatus.SYNCING
    with pytest.raises(ExportNotFoundError):
        client.get_export("999")
    clock.advance(10)
    assert client.wait_for_completion(eid, timeout=5).progress == 100.0


def test_create_watch_and_remove_an_export(
    client: SyncClient, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.add_export()  # a device the server knows
    device = client.get_export("1").devices[0]
    start = datetime(2024, 1, 19, 10, 0, tzinfo=timezone.utc)
    span = DeviceSpan(device.server_id, device.device_id, start, start + timedelta(minutes=5))
    eid = client.create_export([span], path="D:/exports/incident-17")
    assert client.get_export(eid).path == "D:/exports/incident-17"
    with client.watch(eid) as events:
        first = next(events)
        assert isinstance(first, ExportStatusChanged)
        client.remove_export(eid)
        assert isinstance(list(events)[-1], ExportRemoved)


def test_a_watch_is_a_plain_iterator_that_ends_after_the_terminal_event(
    client: SyncClient, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=[10, 20])
    seen = []
    for event in client.watch(eid):
        seen.append(event)
        clock.advance(5)
    assert isinstance(seen[0], ExportStatusChanged)
    assert any(isinstance(e, DeviceProgress) for e in seen)
    assert isinstance(seen[-1], ExportCompleted)
    assert seen[-1].export.progress == 100.0


@pytest.mark.parametrize("leave", ["with", "break", "close"])
def test_leaving_a_sync_watch_early_unsubscribes(
    client: SyncClient, sim: SenseSimulator, clock: ManualClock, leave: str
) -> None:
    left, other = sim.add_export(duration=100), sim.add_export(duration=20)
    gc.disable()  # unsubscribing must not wait for the garbage collector
    try:
        if leave == "with":
            with client.watch(left) as events:
                next(events)
        elif leave == "break":
            for _ in client.watch(left):
                break
        else:
            events = client.watch(left)
            next(events)
            events.close()
        assert client.stats().watches == 0
        since = len(sim.requests)
        # One watched id is polled by id; had the first watch stayed, the list would be.
        for _ in client.watch(other):
            clock.advance(5)
    finally:
        gc.enable()
    polled = [r.query.get("exportid") for r in sim.requests[since:] if r.path == "/command"]
    # A poll of the first export may have been on its way when it was left; from the
    # first poll of the other one on, only the other one is asked for, by id.
    assert other in polled
    assert set(polled[polled.index(other) :]) == {other}


def test_no_thread_is_left_behind_after_close(url: str, backend: str, sim: SenseSimulator) -> None:
    eid = sim.add_export()
    before = set(threading.enumerate())
    client = SyncClient(url, backend=backend)
    assert len(set(threading.enumerate()) - before) == 1  # the client's event loop
    watch = client.watch(eid)
    next(watch)
    client.get_export(eid)
    assert client.stats().watches == 1
    client.close()
    assert set(threading.enumerate()) <= before  # (an idle thread of trio's cache may end)
    final = client.stats()  # the final counts, also when closed
    assert (final.watches, final.watched_ids) == (0, 0)
    assert final.requests >= 2
    client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        client.list_exports()
    with pytest.raises(ClientClosedError):
        client.watch(eid)
    watch.close()  # fine after the client closed


def test_a_bad_option_raises_at_once_and_leaves_no_thread(url: str) -> None:
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="poll"):
        SyncClient(url, poll_interval=0)
    with pytest.raises(TypeError):
        SyncClient(url, colour="red")
    assert set(threading.enumerate()) == before


def test_close_ends_a_watch_blocked_in_another_thread(
    client: SyncClient, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)  # never moves: the clock stands still
    started = threading.Event()
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in client.watch(eid):
                started.set()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(timeout=5)
    client.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClientClosedError)


def test_the_checkpoint_of_a_sync_watch_resumes(
    client: SyncClient, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=10)
    with client.watch(eid) as events:
        next(events)
        next(events)
        checkpoint = events.checkpoint()
    clock.advance(10)
    resumed = list(client.watch(eid, resume=checkpoint))
    assert isinstance(resumed[-1], ExportCompleted)
    assert not any(
        isinstance(e, ExportStatusChanged) and e.previous_status is None for e in resumed
    )


def test_it_is_public_and_shows_its_client(client: SyncClient) -> None:
    assert vdgexport.SyncClient is SyncClient
    assert "127.0.0.1" in repr(client)


def test_base_url_leaves_out_the_credentials() -> None:
    with SyncClient("http://op:s3cret@vdg.test/sense/") as client:
        assert client.base_url == "http://vdg.test/sense"
        assert "s3cret" not in repr(client)

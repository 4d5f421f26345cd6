"""Watching: event sequences, terminal states, the shared poller, outages, leaving early."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport import (
    ConnectionLost,
    ConnectionRestored,
    DeviceProgress,
    ExportCompleted,
    ExportRecovered,
    ExportRemoved,
    ExportStalled,
    ExportStatus,
    ExportStatusChanged,
    ExportVanished,
    VanishReason,
    WatchEvent,
)
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from .conftest import Tap, make_client

S, C, R, P = (
    ExportStatus.SYNCING,
    ExportStatus.COMPLETED,
    ExportStatus.REMOVED,
    ExportStatus.PENDING,
)


def shape(event: WatchEvent) -> tuple[Any, ...]:
    """An event without its timestamps and rates: what a sequence test compares."""
    match event:
        case DeviceProgress():
            return (
                "device",
                event.device_id[-4:],
                event.progress,
                event.previous_progress,
                event.status,
            )
        case ExportStatusChanged():
            return ("status", event.status, event.previous_status)
        case ExportCompleted():
            return ("completed",)
        case ExportRemoved():
            return ("removed",)
        case ExportVanished():
            return ("vanished", event.reason)
        case ExportStalled():
            return ("stalled",)
        case ExportRecovered():
            return ("recovered",)
        case ConnectionLost():
            return ("lost",)
        case ConnectionRestored():
            return ("restored",)


async def take(events: vdgexport.Watch, n: int) -> list[WatchEvent]:
    with anyio.fail_after(5):
        return [await events.__anext__() for _ in range(n)]


async def watch_all(client: vdgexport.Client, ids: list[str]) -> list[vdgexport.Watch]:
    """Open a watch of each id and read its first snapshot (status and one device)."""
    watches = [client.watch(i) for i in ids]
    with anyio.fail_after(10):
        for w in watches:
            await w.__aenter__()
            await take(w, 2)
    return watches


async def rest(events: vdgexport.Watch) -> list[WatchEvent]:
    with anyio.fail_after(5):
        return [event async for event in events]


async def test_exact_sequence_from_first_poll_to_completion(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=[10, 20], pending=5)
    async with client.watch(eid) as events:
        first = await take(events, 3)
        d1, d2 = (e.device_id[-4:] for e in first[1:] if isinstance(e, DeviceProgress))
        assert [shape(e) for e in first] == [
            ("status", P, None),
            ("device", d1, 0.0, None, P),
            ("device", d2, 0.0, None, P),
        ]
        clock.advance(10)  # 5 s pending, then 5 s of syncing
        assert [shape(e) for e in await take(events, 3)] == [
            ("status", S, P),
            ("device", d1, 50.0, 0.0, S),
            ("device", d2, 25.0, 0.0, S),
        ]
        clock.advance(100)
        assert [shape(e) for e in await rest(events)] == [
            ("status", C, S),
            ("device", d1, 100.0, 50.0, C),
            ("device", d2, 100.0, 25.0, C),
            ("completed",),
        ]


async def test_removed_export_ends_with_removed(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client.watch(eid) as events:
        await take(events, 2)
        sim.remove_export(eid)
        tail = await rest(events)
    assert [shape(e)[0] for e in tail] == ["status", "device", "removed"]
    assert isinstance(tail[-1], ExportRemoved)
    assert tail[-1].export.status is R


async def test_unknown_id_vanishes_at_first_poll(client: vdgexport.Client) -> None:
    events = await rest(client.watch("nope"))
    assert [shape(e) for e in events] == [("vanished", VanishReason.NOT_FOUND)]
    assert isinstance(events[0], ExportVanished)
    assert events[0].last_seen is None


async def test_restart_mid_watch_answers_57_and_vanishes(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    async with client.watch(eid) as events:
        await take(events, 2)
        sim.restart()
        [vanished] = await rest(events)
    assert isinstance(vanished, ExportVanished)
    assert vanished.reason is VanishReason.NOT_FOUND
    assert vanished.last_seen is not None
    assert vanished.last_seen.export_id == eid


async def test_restart_with_id_reused_is_replaced_not_merged(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100, devices=2)
    async with client.watch(eid) as events:
        await take(events, 3)
        sim.restart()
        assert sim.add_export(duration=10, devices=2) == eid  # same id, another export
        clock.advance(5)
        tail = await rest(events)
    assert [shape(e) for e in tail] == [("vanished", VanishReason.REPLACED)]


async def test_no_event_twice_over_many_unchanged_polls(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=100)
    async with make_client(tap, clock) as client, client.watch(eid) as events:
        await take(events, 2)
        await tap.requests(tap.count + 30)  # thirty polls of the same state
        clock.advance(10)
        [change] = await take(events, 1)
        await tap.requests(tap.count + 30)
        clock.advance(90)
        tail = await rest(events)
    assert shape(change)[2:4] == (10.0, 0.0)
    assert [shape(e)[0] for e in tail] == ["status", "device", "completed"]


async def test_rate_and_eta_follow_the_clock(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    async with client.watch(eid) as events:
        first = await take(events, 2)
        assert isinstance(first[1], DeviceProgress)
        assert (first[1].rate, first[1].eta) == (None, None)
        for _ in range(3):
            clock.advance(10)
            [progress] = await take(events, 1)
        assert isinstance(progress, DeviceProgress)
        assert progress.rate == pytest.approx(1.0)
        assert progress.eta == timedelta(seconds=70)


async def test_outage_shorter_than_the_timeout_is_ridden_through(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=10)
    async with make_client(sim, clock, outage_timeout=30.0) as client:
        async with client.watch(eid) as events:
            await take(events, 2)
            for fault in (Fault.STATUS, Fault.HTML, Fault.RESET, Fault.TRUNCATED, Fault.MALFORMED):
                sim.inject(fault, times=2)
            clock.advance(10)
            tail = await rest(events)
    assert isinstance(tail[-1], ExportCompleted)
    assert sum(1 for r in sim.requests if r.fault is not None) == 10


async def test_outage_longer_than_the_timeout_raises_the_last_error(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=10)
    async with make_client(sim, clock, outage_timeout=0.05) as client:
        async with client.watch(eid) as events:
            await take(events, 2)
            sim.inject(Fault.STATUS, status=503, times=1_000_000)
            with pytest.raises(vdgexport.HTTPStatusError) as info:
                await rest(events)
    assert info.value.status_code == 503


async def test_unsafe_xml_ends_the_watch_at_once(sim: SenseSimulator, clock: ManualClock) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=10)
    async with make_client(tap, clock, outage_timeout=None) as client:
        async with client.watch(eid) as events:
            await take(events, 2)
            tap.serve(b'<!DOCTYPE r [<!ENTITY a "b">]><result errorcode="0">&a;</result>')
            with pytest.raises(vdgexport.ProtocolError, match="unsafe"):
                await rest(events)


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_end_the_watch_at_once(
    sim: SenseSimulator, clock: ManualClock, status: int
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=10)
    async with make_client(tap, clock, outage_timeout=None) as client:
        async with client.watch(eid) as events:
            await take(events, 2)
            tap.serve(b"no", status=status)
            with pytest.raises(vdgexport.AuthenticationError):
                await rest(events)


async def test_wait_for_completion_outcomes(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    done, removed, slow = (sim.add_export(duration=d) for d in (5, 50, 100))
    clock.advance(5)
    final = await client.wait_for_completion(done, timeout=5)
    assert final.status is C
    assert final.progress == 100.0
    sim.remove_export(removed)
    with pytest.raises(vdgexport.ExportRemovedError) as gone:
        await client.wait_for_completion(removed, timeout=5)
    assert isinstance(gone.value.event, ExportRemoved)
    with pytest.raises(vdgexport.ExportVanishedError) as lost:
        await client.wait_for_completion("404", timeout=5)
    assert isinstance(lost.value.event, ExportVanished)
    with pytest.raises(TimeoutError):
        await client.wait_for_completion(slow, timeout=0.02)
    assert client._poller.watched == 0


async def test_leaving_early_unsubscribes_and_polling_stops(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    async with client.watch(eid) as events:
        await take(events, 1)
    assert client._poller.watched == 0
    await anyio.wait_all_tasks_blocked()
    served = sim.request_count
    await anyio.wait_all_tasks_blocked()
    assert not client._poller._running
    assert sim.request_count == served


async def test_break_without_async_with_unsubscribes(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    async for _ in client.watch(eid):
        break
    assert client._poller.watched == 0


async def test_cancelling_the_consumer_unsubscribes(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    started = anyio.Event()

    async def consume() -> None:
        async with client.watch(eid) as events:
            async for _ in events:
                started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await started.wait()
        tg.cancel_scope.cancel()
    assert client._poller.watched == 0


async def test_aclose_during_a_watch_ends_it_with_an_error_not_an_outcome(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=100)
    seen: list[WatchEvent] = []
    async with make_client(sim, clock) as client:
        async with client.watch(eid) as events:
            seen += await take(events, 2)
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.aclose)
                with pytest.raises(RuntimeError, match="closed"):
                    await rest(events)
        assert not client._poller._running
    assert not any(isinstance(e, ExportCompleted | ExportRemoved | ExportVanished) for e in seen)


async def test_slow_consumer_collapses_progress_but_keeps_status(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=[100, 100])
    async with make_client(tap, clock) as client, client.watch(eid) as events:
        await take(events, 3)
        for _ in range(5):  # five changes the consumer does not read
            clock.advance(10)
            await tap.requests(tap.count + 2)
        clock.advance(50)  # and the end, the last poll
        await tap.requests(tap.count + 1)
        await anyio.wait_all_tasks_blocked()
        tail = await rest(events)
    assert [shape(e)[0] for e in tail] == ["status", "device", "device", "completed"]
    progress = [e for e in tail if isinstance(e, DeviceProgress)]
    assert [(e.progress, e.previous_progress) for e in progress] == [(100.0, 0.0)] * 2


async def test_two_watches_of_one_id_share_the_poll(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=10)
    async with make_client(tap, clock) as client:
        async with client.watch(eid) as a, client.watch(eid) as b:
            assert [shape(e) for e in await take(a, 2)] == [shape(e) for e in await take(b, 2)]
            clock.advance(10)
            assert [shape(e) for e in await rest(a)] == [shape(e) for e in await rest(b)]
    assert all("exportid" in r.query for r in sim.requests)


async def test_200_watches_cost_one_request_per_tick(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=100) for _ in range(200)]
    async with make_client(sim, clock) as client:
        watches = await watch_all(client, ids)
        before = sim.request_count
        for step in range(1, 6):
            clock.advance(10)
            for w in watches:
                [event] = await take(w, 1)
                assert isinstance(event, DeviceProgress)
                assert event.progress == 10.0 * step
        ticks = sim.requests[before:]
        for w in watches:
            await w.aclose()
    assert all("exportid" not in r.query for r in ticks)  # whole-list polls only
    assert len(ticks) <= 5 * 3  # a few idle ticks at most between the five changes


async def test_200_separate_per_id_loops_cost_200_requests_per_tick(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=100) for _ in range(200)]
    async with make_client(sim, clock) as client:
        before = sim.request_count
        async with anyio.create_task_group() as tg:  # the naive way: one loop per export
            for export_id in ids:
                tg.start_soon(client.get_export, export_id)
    assert sim.request_count - before == 200


async def test_checkpoint_resumes_in_another_client_with_only_what_changed(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=[100, 100])
    async with make_client(sim, clock) as first, first.watch(eid) as events:
        await take(events, 3)
        clock.advance(10)
        await take(events, 2)
        saved = json.loads(json.dumps(events.checkpoint()))
    clock.advance(10)
    async with make_client(sim, clock) as second:
        async with second.watch(eid, resume=saved) as resumed:
            got = await take(resumed, 2)
        assert [
            (e.progress, e.previous_progress) for e in got if isinstance(e, DeviceProgress)
        ] == [(20.0, 10.0), (20.0, 10.0)]
        sim.restart()
        assert sim.add_export(duration=[100, 100]) == eid
        tail = await rest(second.watch(eid, resume=saved))
        assert [shape(e) for e in tail] == [("vanished", VanishReason.REPLACED)]


async def test_stall_and_recovery(sim: SenseSimulator, clock: ManualClock) -> None:
    eid = sim.add_export(duration=100)
    async with make_client(sim, clock, stall_after=30.0) as client, client.watch(eid) as events:
        await take(events, 2)
        sim.pause(eid)
        clock.advance(31)
        [stalled] = await take(events, 1)
        assert isinstance(stalled, ExportStalled)
        assert stalled.stalled_for >= timedelta(seconds=30)
        sim.resume(eid)
        clock.advance(5)
        recovered, progress = await take(events, 2)
    assert isinstance(recovered, ExportRecovered)
    assert isinstance(progress, DeviceProgress)


async def test_exhaustive_match_on_watch_event() -> None:
    """`WatchEvent` is a closed union: every member is handled by `shape` above."""
    assert set(vdgexport.WatchEvent.__args__) == {  # type: ignore[attr-defined]
        DeviceProgress,
        ExportStatusChanged,
        ExportStalled,
        ExportRecovered,
        ConnectionLost,
        ConnectionRestored,
        ExportCompleted,
        ExportRemoved,
        ExportVanished,
    }


async def test_end_to_end_over_loopback_http(sim: SenseSimulator, clock: ManualClock) -> None:
    from ._servers import serve

    eid = sim.add_export(duration=[10, 20])
    with serve(sim) as url:
        async with vdgexport.Client(
            url, poll_interval=0.001, max_poll_interval=0.004, clock=clock
        ) as client:
            async with client.watch(eid) as events:
                await take(events, 3)
                clock.advance(20)
                tail = await rest(events)
            assert isinstance(tail[-1], ExportCompleted)


async def test_checkpoint_counts_only_what_the_consumer_has_read(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=[100, 100])
    async with make_client(tap, clock) as first, first.watch(eid) as events:
        await take(events, 3)
        clock.advance(10)
        await tap.requests(tap.count + 2)
        [read] = await take(events, 1)  # the second device's progress stays unread
        saved = json.loads(json.dumps(events.checkpoint()))
    assert isinstance(read, DeviceProgress)
    async with make_client(sim, clock) as second, second.watch(eid, resume=saved) as resumed:
        [again] = await take(resumed, 1)
    assert isinstance(again, DeviceProgress)
    assert again.device_id != read.device_id
    assert (again.progress, again.previous_progress) == (10.0, 0.0)


async def test_checkpoint_before_anything_was_read_starts_afresh(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    watch = client.watch(eid)
    saved = watch.checkpoint()
    assert saved == {"version": 1, "export_id": eid}
    async with client.watch(eid, resume=saved) as resumed:
        first = await take(resumed, 2)
    assert isinstance(first[0], ExportStatusChanged)
    assert first[0].previous_status is None
    with pytest.raises(ValueError, match="checkpoint"):
        client.watch("other", resume=saved)


async def test_restart_under_many_watches_confirms_each_missing_id_once(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = [sim.add_export(duration=100) for _ in range(50)]
    async with make_client(sim, clock) as client:
        watches = await watch_all(client, ids)
        before = len(sim.requests)
        sim.restart()
        for w in watches:
            [event] = await rest(w)
            assert isinstance(event, ExportVanished)
            assert event.reason is VanishReason.NOT_FOUND
        after = sim.requests[before:]
    per_id = [r.query["exportid"] for r in after if "exportid" in r.query]
    assert sorted(per_id) == sorted(ids)  # each confirmed exactly once
    assert max(confirmations_per_tick(after)) == 8  # at most 8 per list poll
    assert len(after) - len(per_id) <= 50 // 8 + 2  # the list polls that found them missing


def confirmations_per_tick(requests: list[Any]) -> list[int]:
    """Per-id requests after each whole-list request."""
    counts: list[int] = []
    for request in requests:
        if "exportid" not in request.query:
            counts.append(0)
        elif counts:
            counts[-1] += 1
    return counts


class Special:
    """ASGI middleware: id "X" answers per id with ``body``; the list never names it."""

    def __init__(self, app: Any, body: bytes) -> None:
        self.app, self.body = app, body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"exportid=X" in scope.get("query_string", b""):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)


async def test_an_id_failing_alone_ends_alone_after_the_outage_timeout(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    healthy = sim.add_export(duration=100)
    app = Special(sim, b'<result errorcode="-18"><description>general</description></result>')
    async with make_client(app, clock, outage_timeout=0.05) as client:
        async with client.watch(healthy) as good, client.watch("X") as bad:
            await take(good, 2)
            with pytest.raises(vdgexport.ApiError, match="-18"):
                await rest(bad)
            clock.advance(10)
            [progress] = await take(good, 1)
    assert isinstance(progress, DeviceProgress)


async def test_an_id_found_only_per_id_keeps_being_polled(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    other = sim.add_export(duration=100)
    done = (
        b'<result errorcode="0"><exports count="1"><export><exportid>X</exportid>'
        b"<path>p</path><status>COMPLETED</status><devices/></export></exports></result>"
    )
    app = Special(sim, done.replace(b"COMPLETED", b"SYNCING"))
    async with make_client(app, clock) as client:
        async with client.watch(other) as events, client.watch("X") as x:
            await take(events, 2)
            [status] = await take(x, 1)
            assert isinstance(status, ExportStatusChanged)
            app.body = done  # the list is unchanged: only the per-id answer moves
            tail = await rest(x)
    assert [shape(e) for e in tail] == [("status", C, S), ("completed",)]


async def test_aclose_from_another_task_ends_the_iteration(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    eid = sim.add_export(duration=100)
    watch = client.watch(eid)
    seen: list[WatchEvent] = []

    async def consume() -> None:
        seen.extend([event async for event in watch])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()  # the consumer waits for a next event
            await watch.aclose()
    assert [type(e) for e in seen] == [ExportStatusChanged, DeviceProgress]


async def test_a_slow_consumer_still_sees_the_first_snapshot_in_server_order(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=[100, 200])
    async with make_client(tap, clock) as client, client.watch(eid) as events:
        await tap.requests(1)
        clock.advance(50)  # the first device moves before the snapshot is read
        await tap.requests(tap.count + 2)
        first = await take(events, 3)
    d1, d2 = (e for e in first if isinstance(e, DeviceProgress))
    assert (d1.progress, d1.previous_progress, d2.progress) == (50.0, None, 25.0)


async def test_a_bandwidth_change_alone_does_not_end_a_stall(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    eid = sim.add_export(duration=100)
    async with make_client(tap, clock, stall_after=30.0) as client, client.watch(eid) as events:
        await take(events, 2)
        sim.pause(eid)
        clock.advance(31)
        [stalled] = await take(events, 1)
        assert isinstance(stalled, ExportStalled)
        body = (await client.get_export(eid)).bandwidth_kbps
        assert body is not None
        tap.serve((await _raw(client, eid)).replace(b"<bandwidth>", b"<bandwidth>1"), times=5)
        await tap.requests(tap.count + 5)
        await anyio.wait_all_tasks_blocked()
        assert events._queue is None  # nothing new: no ExportRecovered


async def _raw(client: vdgexport.Client, eid: str) -> bytes:
    return await client._command("getExportVideoStatus", exportid=eid)

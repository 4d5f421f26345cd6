"""The relay over real loopback HTTP: fan-out, resumption, disconnects, errors, mounting."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from ._relay import PREFIX, Sse, read_until, relay, sse

TERMINAL = ("ExportCompleted", "ExportRemoved", "ExportVanished")


class Board:
    """What every subscriber has read, and a way for the test to wait on it (no sleeping)."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, int], list[Sse]] = {}
        self.step: dict[tuple[str, int], int] = {}
        self.done: set[tuple[str, int]] = set()
        self.now = 0
        self._wake = anyio.Event()

    def ended(self, key: tuple[str, int]) -> bool:
        events = self.streams.get(key)
        return bool(events) and events[-1].type in TERMINAL

    def poke(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        with anyio.fail_after(20):
            while not condition():
                await self._wake.wait()

    async def subscribe(self, http: httpx.AsyncClient, url: str, key: tuple[str, int]) -> None:
        events = self.streams.setdefault(key, [])
        async with sse(http, url) as stream:
            assert stream.response.status_code == 200
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            async for event in stream:
                events.append(event)
                if event.type in ("DeviceProgress", *TERMINAL):
                    self.step[key] = self.now
                self.poke()
        self.done.add(key)
        self.poke()


def same(event: Sse) -> dict[str, object]:
    """An event's data less when it was observed: what subscribers who joined apart share."""
    return {k: v for k, v in event.data.items() if k != "observed_at"}


def progress(events: list[Sse]) -> list[float]:
    return [e.data["progress"] for e in events if e.type == "DeviceProgress"]


async def test_twenty_subscribers_share_one_request_per_tick() -> None:
    durations = [4, 5, 6, 8]
    with relay(poll=0.02) as r:
        ids = [r.sim.add_export(duration=d) for d in durations]
        removed = ids[3]
        board = Board()
        keys = [(i, k) for i in ids for k in range(5)]
        async with httpx.AsyncClient(timeout=10) as http, anyio.create_task_group() as tasks:
            for key in keys:
                url = f"{r.url}/api/exports/{key[0]}/events"
                tasks.start_soon(board.subscribe, http, url, key)
            await board.until(lambda: len(board.step) == len(keys))  # every snapshot read
            first, started = len(r.counter.times), time.monotonic()
            for now in range(1, 9):
                board.now = now
                if now == 3:  # a removal alone: only that export's subscribers hear of it
                    r.sim.remove_export(removed)
                    moving = [k for k in keys if k[0] == removed]
                else:
                    r.clock.advance(1.0)
                    moving = [k for k in keys if not board.ended(k) and k[0] != removed]
                await board.until(lambda: all(board.step.get(k) == now for k in moving))  # noqa: B023
            await board.until(lambda: len(board.done) == len(keys))
            elapsed = time.monotonic() - started
            requests = r.counter.times[first:]

    for export_id, duration in zip(ids[:3], durations, strict=False):
        streams = [board.streams[(export_id, k)] for k in range(5)]
        events = streams[0]
        assert [e.type for e in events][:2] == ["ExportStatusChanged", "DeviceProgress"]
        assert events[0].data["previous_status"] is None
        assert progress(events) == pytest.approx(
            [100 * t / duration for t in range(duration + 1)], abs=0.1
        )
        assert [e.type for e in events[-2:]] == ["DeviceProgress", "ExportCompleted"]
        assert len({e.id for e in events}) == len(events)
        for other in streams[1:]:  # every subscriber of an export read the same stream
            assert [same(e) for e in other[:2]] == [same(e) for e in events[:2]]  # joined apart
            assert [(e.type, e.data) for e in other[2:]] == [(e.type, e.data) for e in events[2:]]
    for k in range(5):
        events = board.streams[(removed, k)]
        assert progress(events)[:3] == pytest.approx([0.0, 12.5, 25.0], abs=0.1)
        assert events[-1].type == "ExportRemoved"
    # One status request per tick for all 20 streams: the pace of one poller, not 20.
    # Stamped at the server, whose thread's jitter under load can bring two requests of one
    # paced poller closer than a poll: the median gap is the pace; 20 pollers would be ~0.
    assert len(requests) <= elapsed / r.poll + 2
    gaps = sorted(b - a for a, b in itertools.pairwise(requests))
    assert gaps[len(gaps) // 2] >= 0.8 * r.poll
    assert gaps[0] >= 0.25 * r.poll


def has_progress(value: float) -> Callable[[list[Sse]], bool]:
    return lambda events: any(abs(p - value) < 0.1 for p in progress(events))


async def test_reconnect_with_last_event_id_repeats_nothing_and_loses_nothing() -> None:
    with relay() as r:
        export_id = r.sim.add_export(duration=[10, 20])
        url = f"{r.url}/api/exports/{export_id}/events"
        async with httpx.AsyncClient(timeout=10) as http:
            async with sse(http, url) as stream:
                before = await read_until(stream, lambda ev: len(progress(ev)) == 2)
                r.clock.advance(2)
                before += await read_until(stream, has_progress(20.0))
                before += await read_until(stream, has_progress(10.0))
            # Away while the export moves on: two steps, the second device finishes late.
            r.clock.advance(2)
            r.clock.advance(2)
            headers = {"Last-Event-ID": before[-1].id or ""}
            async with sse(http, url, headers) as stream:
                assert stream.response.status_code == 200
                after = await read_until(stream, lambda ev: len(progress(ev)) == 2)
                r.clock.advance(20)
                after += [e async for e in stream]
            # A reconnect after the terminal event: nothing left, EventSource stops (204).
            again = await http.get(url, headers={"Last-Event-ID": after[-1].id or ""})
    assert again.status_code == 204
    assert [e.type for e in after[:2]] == ["DeviceProgress"] * 2  # no snapshot: it resumes
    assert progress(after[:2]) == [60.0, 30.0]
    seen: dict[str, list[float]] = {}
    for event in before + after:
        if event.type == "DeviceProgress":
            seen.setdefault(event.data["device_id"], []).append(event.data["progress"])
    for values in seen.values():  # no value twice, every change in order, up to 100
        assert values == sorted(set(values))
        assert values[-1] == 100.0
    first_after = {e.data["device_id"]: e.data for e in after if e.type == "DeviceProgress"}
    for device, data in first_after.items():  # picks up right where the reader left
        assert data["previous_progress"] in seen[device]
    assert [e.type for e in after[-2:]] == ["DeviceProgress", "ExportCompleted"]


async def test_a_subscriber_that_goes_away_is_unsubscribed_at_once() -> None:
    with relay() as r:
        gone, kept = r.sim.add_export(duration=60), r.sim.add_export(duration=60)
        async with httpx.AsyncClient(timeout=10) as http:
            async with sse(http, f"{r.url}/api/exports/{gone}/events") as first:
                await read_until(first, lambda ev: bool(progress(ev)))
                async with sse(http, f"{r.url}/api/exports/{kept}/events") as second:
                    await read_until(second, lambda ev: bool(progress(ev)))
                    n = len(r.counter.times)
                    await anyio.to_thread.run_sync(r.counter.wait_for, n + 2)
                    assert r.counter.ids(n + 1) is None  # two watched: the whole list
                    await first.aclose()  # the browser tab closes
                    # Once the relay notices, only `kept` is polled (by id), never `gone`.
                    with anyio.fail_after(5):
                        while r.counter.ids(len(r.counter.times) - 1) != kept:
                            await anyio.to_thread.run_sync(
                                r.counter.wait_for, len(r.counter.times) + 1
                            )
                    n = len(r.counter.times)
                    await anyio.to_thread.run_sync(r.counter.wait_for, n + 5)
                    assert all(r.counter.ids(i) == kept for i in range(n, n + 5))


async def test_unknown_ids_and_unreadable_tokens_are_json_errors() -> None:
    with relay() as r:
        export_id = r.sim.add_export(duration=60)
        async with httpx.AsyncClient(base_url=r.url, timeout=10) as http:
            listed = await http.get("/api/exports")
            missing = await http.get("/api/exports/99")
            missing_events = await http.get("/api/exports/99/events")
            garbage = await http.get(
                f"/api/exports/{export_id}/events", headers={"Last-Event-ID": "not-a-token"}
            )
            async with sse(http, f"/api/exports/{export_id}/events") as stream:
                token = (await read_until(stream, lambda ev: True))[0].id or ""
            other = r.sim.add_export(duration=60)
            foreign = await http.get(
                f"/api/exports/{other}/events", headers={"Last-Event-ID": token}
            )
            one = await http.get(f"/api/exports/{export_id}")
            new = await http.get(f"/api/exports/{other}")  # newer than the list: asked by id
    assert missing.status_code == missing_events.status_code == 404, missing.text
    assert missing.json()["code"] == missing_events.json()["code"] == -57
    assert "99" in missing_events.json()["error"]
    assert garbage.status_code == foreign.status_code == 400
    assert "token" in garbage.json()["error"]
    assert one.status_code == 200
    assert one.json()["export_id"] == export_id
    assert one.json()["devices"][0]["progress"] == 0.0
    assert [e["export_id"] for e in listed.json()["exports"]] == [export_id]
    assert new.status_code == 200
    assert new.json()["export_id"] == other


async def test_all_exports_on_one_stream_new_ones_join_and_idle_streams_keep_alive() -> None:
    with relay(keepalive=0.05, poll=0.02) as r:
        first = r.sim.add_export(duration=4)
        async with (
            httpx.AsyncClient(timeout=10) as http,
            sse(http, f"{r.url}/api/events") as events,
        ):
            with anyio.fail_after(30):  # keep-alives would keep a read timeout from firing
                comments = events.comments
                seen = [await anext(events), await anext(events)]
                assert [(e.type, e.data["export_id"]) for e in seen] == [
                    ("ExportStatusChanged", first),
                    ("DeviceProgress", first),
                ]
                with anyio.fail_after(10):  # nothing changes: a comment line comes
                    while "keep-alive" not in comments:
                        comments.append(await events.comment())
                second = r.sim.add_export(duration=4)  # joins without a reconnect
                joined = await anext(events)
                assert (joined.type, joined.data["export_id"]) == ("ExportStatusChanged", second)
                r.clock.advance(4)
                ends = {}
                while len(ends) < 2:
                    event = await anext(events)
                    if event.type in TERMINAL:
                        ends[event.data["export_id"]] = event.type
    assert ends == {first: "ExportCompleted", second: "ExportCompleted"}


async def test_dashboard_is_served_under_the_mount_prefix_with_relative_urls() -> None:
    with relay() as r:
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(r.url + "/")
            bare = await http.get(r.url, follow_redirects=False)
    assert r.url.endswith(PREFIX)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'new EventSource("api/events")' in page.text  # relative: works under any prefix
    assert "http://" not in page.text  # no CDN: works offline
    assert "https://" not in page.text
    assert bare.status_code in (301, 307, 308)
    assert bare.headers["location"].endswith(PREFIX + "/")

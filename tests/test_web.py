"""The relay over real loopback HTTP: fan-out, resumption, disconnects, errors, mounting."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from ._relay import PREFIX, Relay, Sse, relay, sse_events

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

    async def until(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        with anyio.fail_after(timeout):
            while not condition():
                await self._wake.wait()

    async def subscribe(self, http: httpx.AsyncClient, url: str, key: tuple[str, int]) -> None:
        events = self.streams.setdefault(key, [])
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in sse_events(response):
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
        assert progress(events) == pytest.approx([100 * t / duration for t in range(duration + 1)], abs=0.1)
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
    assert len(requests) <= elapsed / r.poll + 2
    assert min(b - a for a, b in zip(requests, requests[1:], strict=False)) >= 0.8 * r.poll

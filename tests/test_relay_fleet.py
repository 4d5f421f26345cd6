"""Relays served from Redis (``serve --redis``): two replicas on one real redis-server and
one real publisher process, the simulator behind uvicorn, browsers' SSE over loopback."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import anyio
import coredis
import httpx
import pytest

import vdgexport
from vdgexport.fleet import FleetEvent
from vdgexport.testing import ManualClock, SenseSimulator

from ._fleet import check_account
from ._redis import redis_server
from ._relay import INTERVAL, Fleet, Sse, fleet_of, fleet_relay, read_until, relay_process, sse


@pytest.fixture
def fleet(sim: SenseSimulator) -> Iterator[Fleet]:
    with fleet_of(sim) as made:
        yield made


def progress_at(value: float) -> Callable[[list[Sse]], bool]:
    return lambda events: any(
        e.type == "DeviceProgress" and e.data["progress"] >= value for e in events
    )


def ended(events: list[Sse]) -> bool:
    return events[-1].type in ("ExportCompleted", "ExportRemoved", "ExportVanished")


def account(events: list[Sse]) -> list[FleetEvent]:
    """The SSE events as the fleet's (token, event), for `check_account`."""
    return [FleetEvent(e.id or "", vdgexport.event_from_dict(e.data)) for e in events]


async def test_a_stream_read_half_on_one_relay_resumes_on_the_other_repeating_nothing(
    fleet: Fleet, sim: SenseSimulator, clock: ManualClock
) -> None:
    export_id = sim.add_export(duration=[10, 20])
    await fleet.publish()
    await fleet.knows(export_id)
    start, first_request = time.monotonic(), len(fleet.recorder.authorizations)
    with fleet_relay(fleet.redis.url) as one, fleet_relay(fleet.redis.url) as two:
        url = f"/api/exports/{export_id}/events"
        async with httpx.AsyncClient(timeout=15) as http:
            async with sse(http, one + url) as stream:
                seen = await read_until(stream, lambda ev: len(ev) >= 3)  # the current state
                clock.advance(3)
                seen += await read_until(stream, progress_at(30))
            clock.advance(3)  # away: this change is read from relay two
            async with sse(http, two + url, {"Last-Event-ID": seen[-1].id or ""}) as stream:
                resumed = await read_until(stream, progress_at(60))
                clock.advance(20)
                resumed += [e async for e in stream]
            again = await http.get(two + url, headers={"Last-Event-ID": resumed[-1].id or ""})
    elapsed = time.monotonic() - start
    assert [e.type for e in seen[:3]] == ["ExportStatusChanged", "DeviceProgress", "DeviceProgress"]
    assert resumed[0].type == "DeviceProgress"  # no current state again: it resumed
    check_account(account(seen + resumed))  # every change once, in order, none missing
    assert resumed[-1].type == "ExportCompleted"
    finals = [e.data["progress"] for e in seen + resumed if e.type == "DeviceProgress"]
    assert finals.count(100.0) == 2
    assert again.status_code == 204  # after the terminal event: EventSource stops
    # The VDG server saw the publisher alone: a status request (and a list) per tick.
    requests = fleet.recorder.authorizations[first_request:]
    assert len(set(requests)) == 1
    assert len(requests) <= 2 * (elapsed / INTERVAL) + 4


async def test_a_token_that_cannot_resume_is_a_reset_then_the_current_state(
    fleet: Fleet, sim: SenseSimulator
) -> None:
    export_id = sim.add_export(duration=60)
    await fleet.publish()
    await fleet.knows(export_id)
    lost = "v1:an-epoch-redis-lost:1-0"  # the token of an epoch Redis no longer has
    with fleet_relay(fleet.redis.url) as relay:
        async with httpx.AsyncClient(timeout=15, base_url=relay) as http:
            headers = {"Last-Event-ID": lost}
            async with sse(http, f"/api/exports/{export_id}/events", headers) as stream:
                one = await read_until(stream, lambda ev: len(ev) >= 3)
            async with sse(http, "/api/events", headers) as stream:
                every = await read_until(stream, lambda ev: len(ev) >= 3)
            async with sse(http, "/api/events", {"Last-Event-ID": "not a token"}) as stream:
                foreign = await read_until(stream, lambda ev: len(ev) >= 2)
            async with sse(http, "/api/events", {"Last-Event-ID": every[-1].id or ""}) as stream:
                sim.remove_export(export_id)
                after = await read_until(stream, ended)
            bad = await http.get(f"/api/exports/{export_id}/events", headers={"Last-Event-ID": "x"})
            unknown = await http.get("/api/exports/nope/events")
            listed = (await http.get("/api/exports")).json()["exports"]
            missing = await http.get("/api/exports/nope")
    for events in (one, every):
        assert [e.type for e in events] == ["reset", "ExportStatusChanged", "DeviceProgress"]
        assert events[1].data["export_id"] == export_id
    assert [e.type for e in foreign] == ["reset", "ExportStatusChanged"]
    # Resumed after the current state: no reset and no state again, the removal alone.
    assert after[0].type == "ExportStatusChanged"
    assert (after[0].data["previous_status"], after[0].data["status"]) == ("SYNCING", "REMOVED")
    assert "reset" not in [e.type for e in after]
    assert after[-1].type == "ExportRemoved"
    assert bad.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["code"] == -57
    assert [e["export_id"] for e in listed] == [export_id]
    assert missing.status_code == 404


@pytest.mark.slow
async def test_serve_redis_metrics_and_health_follow_the_lease_and_redis(
    fleet: Fleet, sim: SenseSimulator
) -> None:
    export_id = sim.add_export(duration=60)
    args = ("--redis", fleet.redis.url, "--name", "site", "--timeout", "2")
    with relay_process(*args) as (process, url):
        async with httpx.AsyncClient(timeout=15, base_url=url) as http:
            waiting = await http.get("healthz")
            publisher = await fleet.publish()
            leading = await http.get("healthz")
            await fleet.knows(export_id)
            known = await http.get("healthz")
            async with sse(http, f"api/exports/{export_id}/events") as stream:
                await read_until(stream, lambda ev: len(ev) >= 2)
                metrics = (await http.get("metrics")).text
            publisher.signal(signal.SIGKILL)
            await fleet.lapse()  # the killed leader's lease runs out (at once, here)
            lapsed = (await http.get("healthz")).json()
            fleet.redis.stop()
            down = await http.get("healthz")
            async with sse(http, "api/events") as stream:  # open while Redis is down
                first = await stream.comment()
                process.send_signal(signal.SIGINT)  # Ctrl-C ends the open stream, exits 0
                _, stderr = process.communicate(timeout=10)
    assert waiting.status_code == 503
    assert waiting.json()["reason"] == "no publisher holds the lease"
    assert leading.status_code == 200
    assert leading.json()["status"] == "ok"
    assert known.json() == {"status": "ok", "exports": 1}
    assert "vdgexport_sse_subscribers 1.0" in metrics
    assert "vdgexport_events_sent_total 2.0" in metrics
    assert "vdgexport_requests_total" not in metrics  # it sends the VDG server nothing
    assert lapsed["reason"] == "no publisher holds the lease"
    assert down.status_code == 503
    assert "Redis unreachable" in down.json()["reason"]
    assert first == "connected"
    assert process.returncode == 0
    assert "Traceback" not in stderr


async def test_a_fleet_state_that_cannot_be_read_is_an_error_event_not_a_crash() -> None:
    with redis_server() as redis:
        async with coredis.Redis.from_url(redis.url) as admin:  # what no publisher wrote
            await admin.set("vdgexport:{site}:epoch", "e1")
            await admin.hset("vdgexport:{site}:state", {"7": "not a state"})
            await admin.xadd("vdgexport:{site}:stream", {"p": "e1", "k": "epoch"})
        with fleet_relay(redis.url) as relay:
            async with httpx.AsyncClient(timeout=15, base_url=relay) as http:
                with anyio.fail_after(15):
                    async with sse(http, "/api/events") as stream:
                        events = [e async for e in stream]  # it ends after the error
                listed = await http.get("/api/exports")
                page = await http.get("/")
    assert [e.type for e in events] == ["error"]
    assert events[0].data["export_id"] is None
    assert "export '7'" in events[0].data["error"]
    assert listed.status_code == 503
    assert page.status_code == 200

"""Hostile review of the relay over a client (attack2, docs/review-findings.md G*): uvicorn on
loopback, the simulator behind it."""

from __future__ import annotations

import anyio
import httpx

from vdgexport.testing import Fault

from ._relay import read_until, relay, sse


async def test_an_export_whose_watch_gave_up_in_an_outage_is_followed_again_after_it() -> None:
    """G3: a VDG outage longer than the client's ``outage_timeout`` ends each watch of
    ``/api/events`` (an ``error`` event); once the server answers again the stream goes on
    with those exports, as a reload of the page would."""
    with relay(poll=0.02, outage_timeout=0.2) as r:
        export_id = r.sim.add_export(duration=10)
        async with httpx.AsyncClient(timeout=10) as http, sse(http, f"{r.url}/api/events") as s:
            with anyio.fail_after(10):
                first = await read_until(s, lambda ev: len(ev) >= 2)
                r.sim.inject(Fault.STATUS, status=503, times=100)  # longer than outage_timeout
                failed = await read_until(s, lambda ev: ev[-1].type == "error")
            r.clock.advance(2)
            with anyio.fail_after(5):  # the server answers again: its progress comes
                after = await read_until(
                    s, lambda ev: ev[-1].type == "DeviceProgress" and ev[-1].data["progress"] >= 20
                )
    assert [e.type for e in first] == ["ExportStatusChanged", "DeviceProgress"]
    assert failed[-1].data["export_id"] == export_id
    assert after[0].type == "ExportStatusChanged"  # followed anew: its current state first
    assert all(e.data["export_id"] == export_id for e in after)

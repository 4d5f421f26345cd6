"""A FastAPI service in front of a VDG Sense server: server-sent events and new exports.

One `vdgexport.Client` for the whole service, opened in the lifespan: every request shares
its poller, so any number of browsers following one export cost one request per poll.

    GET  /exports/{id}/events   the export's events as server-sent events (JSON data,
                                `event_to_dict`), ending after the terminal one
    POST /exports               {"spans": [{"server_id", "device_id", "start", "end"}],
                                 "path": ..., "bandwidth_kbps": ...} -> {"export_id": ...}

Run it against the simulator (`pip install fastapi uvicorn`):

    vdgexport simulate --port 8080 &
    VDG_URL=http://127.0.0.1:8080 python examples/fastapi_service.py
    curl -N http://127.0.0.1:8000/exports/1/events

Shutdown is clean: open event streams are given `timeout_graceful_shutdown` seconds, then
cancelled (leaving their `async with client.watch(...)` unsubscribes), and the lifespan
closes the client. Each worker process has its own client and poller: with many workers
(or many services) watching one server, put `vdgexport serve` (the relay) in front.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

import vdgexport


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One client for the service's lifetime; leaving closes it and ends every watch."""
    url = os.environ.get("VDG_URL", "http://127.0.0.1:8080")
    poll_interval = float(os.environ.get("VDG_POLL_INTERVAL", "1"))
    async with vdgexport.Client(url, poll_interval=poll_interval) as client:
        app.state.vdg = client
        yield


app = FastAPI(title="VDG exports", lifespan=lifespan)


def sse(name: str, data: object) -> str:
    """One server-sent event."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@app.get("/exports/{export_id}/events")
async def export_events(export_id: str, request: Request) -> StreamingResponse:
    """The export's events as they happen, ending after the terminal one."""
    client: vdgexport.Client = request.app.state.vdg

    async def stream() -> AsyncIterator[str]:
        try:
            # `async with`: the watch is unsubscribed at once when the stream ends in any
            # way (the terminal event, the browser leaving, the server shutting down).
            async with client.watch(export_id) as events:
                async for event in events:
                    yield sse(type(event).__name__, vdgexport.event_to_dict(event))
        except vdgexport.VdgError as exc:  # an outage too long, refused credentials, ...
            yield sse("error", {"error": f"{type(exc).__name__}: {exc}"})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


class Span(BaseModel):
    """One device and the span of its recording to export (aware datetimes)."""

    server_id: str
    device_id: str
    start: datetime
    end: datetime


class NewExport(BaseModel):
    """What POST /exports takes."""

    spans: list[Span]
    path: str | None = None
    bandwidth_kbps: float | None = None


@app.post("/exports", status_code=201)
async def create_export(body: NewExport, request: Request) -> dict[str, str]:
    """Ask the server for a new export; answer its id."""
    client: vdgexport.Client = request.app.state.vdg
    try:
        spans = [vdgexport.DeviceSpan(s.server_id, s.device_id, s.start, s.end) for s in body.spans]
        export_id = await client.create_export(
            spans, path=body.path, bandwidth_kbps=body.bandwidth_kbps
        )
    except ValueError as exc:  # a naive datetime, no spans, ...
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except vdgexport.VdgError as exc:  # the server said no, or could not be reached
        raise HTTPException(status_code=502, detail=f"{type(exc).__name__}: {exc}") from None
    return {"export_id": export_id}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000, timeout_graceful_shutdown=5)

"""`create_app`: the relay's routes over one shared `vdgexport.Client`."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import vdgexport

from ._fleet import FleetSource, fleet_routes
from ._sse import KEEPALIVE, Channel, EventStream, RelayStats, TokenError, decode_token
from ._streams import ListCache, all_exports_stream, error_text, export_stream

__all__ = ["create_app"]

_NO_STORE = {"cache-control": "no-store"}


def create_app(
    client: vdgexport.Client | FleetSource,
    *,
    list_max_age: float = 2.0,
    keepalive: float = KEEPALIVE,
    stats: RelayStats | None = None,
) -> Starlette:
    """The relay as an ASGI app (Starlette): JSON, server-sent events and the dashboard.

    The client stays the caller's: enter it (``async with client``) for as long as the app
    serves, e.g. in the lifespan of the app that mounts this one. Every consumer shares its
    one poller, so the VDG server sees one status request per tick however many streams
    are open. Closing the client ends every open stream.

    Given a `FleetSource` instead of a client, it serves the same routes from the fleet's
    Redis stream and polls nothing: each ``id:`` is then the fleet token, so a browser
    resumes with ``Last-Event-ID`` on any replica, also on ``/api/events``; a token that
    cannot be resumed gives ``event: reset`` and the current state.

    Args:
        client: the `vdgexport.Client` every route uses, or a `FleetSource`.
        list_max_age: seconds a whole list is reused by ``GET /api/exports``: at most one
            list request per ``list_max_age`` for all of them together. ``GET /api/events``
            asks for none: it finds new exports in the poller's own list answers
            (`vdgexport.Client.watch_list`), one status request per tick in all.
        keepalive: seconds without an event after which a stream gets a comment line.
        stats: counts the open streams and the events sent (for ``/metrics``).

    Routes:
        ``GET /``: the live dashboard page.
        ``GET /api/exports``: ``{"exports": [...]}``, each as `vdgexport.export_to_dict`.
        ``GET /api/exports/{id}``: one export; 404 with a JSON error if the server does not
        know it.
        ``GET /api/exports/{id}/events``: ``text/event-stream`` of its watch, ending after
        the terminal event; ``Last-Event-ID`` resumes after that event.
        ``GET /api/events``: one stream of every listed export; new exports join it.

    Example:
        ```python
        from contextlib import asynccontextmanager
        from fastapi import FastAPI
        import vdgexport, vdgexport.web

        client = vdgexport.Client("http://vdg.example", auth=("user", "secret"))

        @asynccontextmanager
        async def lifespan(app):
            async with client:
                yield

        app = FastAPI(lifespan=lifespan)
        app.mount("/vdg", vdgexport.web.create_app(client))
        ```
    """
    if not keepalive > 0 or not list_max_age > 0:
        raise ValueError("keepalive and list_max_age must be positive")
    stats = RelayStats() if stats is None else stats
    page = files("vdgexport.web").joinpath("dashboard.html").read_text(encoding="utf-8")

    async def dashboard(request: Request) -> Response:
        return HTMLResponse(page, headers=_NO_STORE)

    if isinstance(client, FleetSource):
        fleet = fleet_routes(client, keepalive=keepalive, stats=stats)
        return Starlette(routes=[Route("/", dashboard), *fleet])
    lists = ListCache(client, list_max_age)

    async def exports(request: Request) -> Response:
        try:
            listed = await lists.get()
        except vdgexport.VdgError as exc:
            return _error(exc)
        return JSONResponse(
            {"exports": [vdgexport.export_to_dict(e) for e in listed]}, headers=_NO_STORE
        )

    async def export(request: Request) -> Response:
        export_id = request.path_params["export_id"]
        try:
            found = (await lists.get()).get(export_id)
            if found is None:  # not in the list (yet?): ask the server about this id
                found = await client.get_export(export_id)
        except (vdgexport.VdgError, ValueError) as exc:
            return _error(exc)
        return JSONResponse(vdgexport.export_to_dict(found), headers=_NO_STORE)

    async def export_events(request: Request) -> Response:
        export_id = request.path_params["export_id"]
        token = request.headers.get("last-event-id")
        resume: dict[str, Any] | None = None
        if token:
            try:
                resume, ended = decode_token(token)
            except TokenError as exc:
                return _error(exc)
            if ended:  # the stream ended with its terminal event: tell EventSource to stop
                return Response(status_code=204)
        try:
            watch = client.watch(export_id, resume=resume)
        except (ValueError, RuntimeError) as exc:
            return _error(exc)

        async def produce(channel: Channel) -> None:
            await export_stream(watch, channel, fresh=resume is None, keepalive=keepalive)

        return EventStream(produce, stats)

    async def all_events(request: Request) -> Response:
        reset = bool(request.headers.get("last-event-id"))

        async def produce(channel: Channel) -> None:
            await all_exports_stream(client, channel, keepalive=keepalive, reset=reset)

        return EventStream(produce, stats)

    routes = [
        Route("/", dashboard),
        Route("/api/exports", exports),
        Route("/api/exports/{export_id}", export),
        Route("/api/exports/{export_id}/events", export_events),
        Route("/api/events", all_events),
    ]
    return Starlette(routes=routes)


def _error(exc: BaseException) -> JSONResponse:
    """The JSON answer for an error: 404 unknown id, 400 bad input, 503 closed, else 502."""
    status = 502
    data: dict[str, Any] = {"error": error_text(exc)}
    if isinstance(exc, vdgexport.ExportNotFoundError):
        status, data["code"] = 404, exc.code
    elif isinstance(exc, vdgexport.ApiError):
        data["code"] = exc.code
    elif isinstance(exc, RuntimeError):  # closed, or never entered: the caller's client
        status = 503
    elif isinstance(exc, ValueError):
        status = 400
    return JSONResponse(data, status_code=status, headers=_NO_STORE)

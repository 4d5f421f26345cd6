"""The relay served from a fleet's Redis stream (`vdgexport.fleet`) instead of a Client.

Each stream is one `vdgexport.fleet.subscribe` whose tokens are the SSE ids, so that a
browser resumes with ``Last-Event-ID`` on any replica; a resync is ``event: reset``
followed by the current state. Nothing here talks to the VDG server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import vdgexport

from ._sse import Channel, EventStream, RelayStats, comment, frame
from ._streams import _TIMEOUT, _next, error_text, logger

if TYPE_CHECKING:
    from vdgexport.fleet import FleetSnapshot, Subscription

__all__ = ["FleetSource", "fleet_routes"]

_NO_STORE = {"cache-control": "no-store"}


class FleetSource:
    """A fleet as the relay's source: `vdgexport.web.create_app` serves it from Redis.

    Give it to `create_app` instead of a `vdgexport.Client`, and enter it (``async with``)
    for as long as the app serves; leaving it ends every open stream. It needs the
    ``fleet`` extra, and a publisher (``vdgexport publish``) leading fleet ``name``.

    Args:
        redis_url: the fleet's Redis, ``redis://[:password@]host[:port][/db]``.
        name: the fleet's name, as given to its publishers.
        timeout: seconds a look at the current state (JSON routes, health) may take.

    Raises:
        ValueError: not a Redis URL, or a bad fleet name.
        ImportError: the ``fleet`` extra is not installed.

    Example:
        ```python
        source = vdgexport.web.FleetSource("redis://localhost", name="site-a")
        async with source:  # e.g. in the lifespan of the app that mounts it
            app = vdgexport.web.create_app(source)
        ```
    """

    def __init__(self, redis_url: str, *, name: str, timeout: float = 5.0) -> None:
        from vdgexport import fleet

        fleet.subscribe(redis_url, name=name)  # checks the URL and the name now
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self._url, self.name, self._timeout = redis_url, name, timeout
        self._scopes: set[anyio.CancelScope] = set()
        self._open = False

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"<FleetSource name={self.name!r}>"

    async def __aenter__(self) -> FleetSource:
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """End every open stream; the app answers 503 from now on."""
        self._open = False
        for scope in list(self._scopes):
            scope.cancel()
        await anyio.lowlevel.checkpoint()

    async def snapshot(self, export_id: str | None = None) -> FleetSnapshot:
        """The fleet's current exports (or only ``export_id``'s) and whether a publisher
        leads (`fleet.snapshot`).

        Raises:
            RuntimeError: the source is not entered, or closed.
            vdgexport.VdgError: Redis did not answer within ``timeout``, or the state
                it holds cannot be read.
        """
        from vdgexport import fleet

        self._check()
        try:
            with anyio.fail_after(self._timeout):
                return await fleet.snapshot(self._url, name=self.name, export_id=export_id)
        except vdgexport.VdgError as exc:  # a state it cannot read
            raise vdgexport.VdgError(f"the fleet's state is unreadable ({exc})") from None
        except Exception as exc:  # coredis's errors, OSError, TimeoutError: unreachable
            raise vdgexport.VdgError(f"Redis unreachable ({error_text(exc)})") from None

    def subscribe(self, export_id: str | None = None, since: str | None = None) -> Subscription:
        """A `vdgexport.fleet.subscribe` of this fleet (`ValueError`: not a fleet token)."""
        from vdgexport import fleet

        self._check()
        return fleet.subscribe(self._url, name=self.name, export_id=export_id, since=since)

    @asynccontextmanager
    async def _streaming(self) -> AsyncIterator[None]:
        """A stream's lifetime: `aclose` ends it."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                yield
            finally:
                self._scopes.discard(scope)

    def _check(self) -> None:
        if not self._open:
            raise RuntimeError("the fleet source is not open: enter it with `async with`")


def fleet_routes(source: FleetSource, *, keepalive: float, stats: RelayStats) -> list[Route]:
    """The JSON and event routes of `create_app` over ``source`` (the page is added there)."""

    async def exports(request: Request) -> Response:
        try:
            now = await source.snapshot()
        except (vdgexport.VdgError, RuntimeError) as exc:
            return _unavailable(exc)
        return JSONResponse(
            {"exports": [vdgexport.export_to_dict(e) for e in now.exports]}, headers=_NO_STORE
        )

    async def export(request: Request) -> Response:
        export_id = request.path_params["export_id"]
        try:
            now = await source.snapshot(export_id)
        except (vdgexport.VdgError, RuntimeError) as exc:
            return _unavailable(exc)
        for found in now.exports:
            if found.export_id == export_id:
                return JSONResponse(vdgexport.export_to_dict(found), headers=_NO_STORE)
        return _unknown(export_id)

    async def export_events(request: Request) -> Response:
        export_id = request.path_params["export_id"]
        since = request.headers.get("last-event-id") or None
        try:
            subscription = source.subscribe(export_id, since)
            if since is None:  # a new stream of an export the fleet does not know: 404
                now = await source.snapshot(export_id)
                if all(e.export_id != export_id for e in now.exports):
                    return _unknown(export_id)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=_NO_STORE)
        except (vdgexport.VdgError, RuntimeError) as exc:
            return _unavailable(exc)

        async def produce(channel: Channel) -> None:
            await _stream(source, subscription, channel, keepalive=keepalive, resumed=bool(since))

        return EventStream(produce, stats)

    async def all_events(request: Request) -> Response:
        since = request.headers.get("last-event-id") or None
        try:
            try:
                subscription, reset = source.subscribe(None, since), False
            except ValueError:  # not a fleet token (another relay's?): start afresh
                subscription, reset = source.subscribe(), True
        except RuntimeError as exc:
            return _unavailable(exc)

        async def produce(channel: Channel) -> None:
            await channel.write(frame("reset", {}) if reset else comment("connected"))
            await _stream(source, subscription, channel, keepalive=keepalive, resumed=False)

        return EventStream(produce, stats)

    return [
        Route("/api/exports", exports),
        Route("/api/exports/{export_id}", export),
        Route("/api/exports/{export_id}/events", export_events),
        Route("/api/events", all_events),
    ]


async def _stream(
    source: FleetSource,
    subscription: Subscription,
    channel: Channel,
    *,
    keepalive: float,
    resumed: bool,
) -> None:
    """Write ``subscription``'s events to ``channel`` until it ends or ``source`` closes.

    The subscription is read by a task of its own (cancelled only when the stream ends),
    so that a keep-alive never interrupts a read from Redis. A ``resumed`` stream of one
    export that ends before any event (its token was that of the terminal event) answers
    204, which tells ``EventSource`` to stop reconnecting.
    """
    send, receive = anyio.create_memory_object_stream[bytes](0)
    async with source._streaming(), anyio.create_task_group() as tasks:
        tasks.start_soon(_pump, subscription, send)
        async with receive:
            while True:
                try:
                    chunk = await _next(receive.receive, keepalive)
                except anyio.EndOfStream:
                    break
                await channel.write(comment() if chunk is _TIMEOUT else chunk)
        if resumed and not channel.started:
            await channel.answer(204)
        tasks.cancel_scope.cancel()


async def _pump(subscription: Subscription, send: MemoryObjectSendStream[bytes]) -> None:
    """Each `FleetEvent` of ``subscription`` as a frame (after ``event: reset`` on a resync)."""
    async with send:
        try:
            async with subscription:
                async for item in subscription:
                    if item.resync:
                        await send.send(frame("reset", {}))
                    data = vdgexport.event_to_dict(item.event)
                    await send.send(frame(str(data["type"]), data, item.token))
        except Exception as exc:  # the fleet's state could not be read: this stream alone ends
            logger.warning("fleet stream failed: %s", error_text(exc))
            await send.send(frame("error", {"export_id": None, "error": error_text(exc)}))


def _unknown(export_id: str) -> JSONResponse:
    data: dict[str, Any] = {"error": f"no export {export_id!r} in the fleet", "code": -57}
    return JSONResponse(data, status_code=404, headers=_NO_STORE)


def _unavailable(exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": error_text(exc)}, status_code=503, headers=_NO_STORE)

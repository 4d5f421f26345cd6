"""What the relay streams: one export's watch, or every listed export's, as SSE frames."""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

import vdgexport

from ._sse import Channel, comment, event_frame, frame

__all__ = ["ListCache", "all_exports_stream", "error_text", "export_stream"]

logger = logging.getLogger("vdgexport.web")
_T = TypeVar("_T")
_TIMEOUT: Any = object()


def error_text(exc: BaseException) -> str:
    """An error as one line for a client: its type and message (never a secret: see §3)."""
    return f"{type(exc).__name__}: {exc}"


def _closed(exc: BaseException) -> bool:
    """Whether ``exc`` says the client was closed: every stream then ends."""
    return isinstance(exc, vdgexport.ClientClosedError)


class ListCache:
    """The server's whole list, fetched at most once per ``max_age`` for every consumer
    (``GET /api/exports``); concurrent callers share one request."""

    def __init__(
        self,
        client: vdgexport.Client,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._max_age = max_age
        self._clock = clock
        self._lock: anyio.Lock | None = None  # made where the app serves, on first use
        self._list: vdgexport.ExportList | None = None
        self._at = -math.inf

    async def get(self) -> vdgexport.ExportList:
        """The list, fetched now unless one was fetched less than ``max_age`` ago."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._list is None or self._clock() - self._at >= self._max_age:
                self._at = self._clock()  # also on failure: failures are paced alike
                self._list = await self._client.list_exports()
            return self._list


async def _next(source: Callable[[], Awaitable[_T]], seconds: float) -> _T:
    """``await source()``, or `_TIMEOUT` after ``seconds`` of nothing."""
    with anyio.move_on_after(seconds):
        return await source()
    return _TIMEOUT  # type: ignore[no-any-return]


async def _anext(watch: vdgexport.Watch) -> vdgexport.WatchEvent | None:
    try:
        return await watch.__anext__()
    except StopAsyncIteration:
        return None


async def export_stream(
    watch: vdgexport.Watch, channel: Channel, *, fresh: bool, keepalive: float
) -> None:
    """Stream ``watch`` to ``channel`` until its terminal event.

    A ``fresh`` watch (no resume token) waits up to ``keepalive`` for its first event
    before it answers, so that an id the server does not know gets a 404 instead of a
    stream.
    """
    export_id = watch.export_id
    async with watch:
        try:
            if fresh:
                first = await _next(lambda: _anext(watch), keepalive)
                if isinstance(first, vdgexport.ExportVanished) and first.last_seen is None:
                    await channel.answer(404, {"error": f"no export {export_id!r}", "code": -57})
                    return
                if first is None:
                    return
                if first is not _TIMEOUT:
                    await channel.write(event_frame(first, watch))
                    if isinstance(first, vdgexport.TerminalEvent):  # type: ignore[arg-type]
                        return
                else:
                    await channel.write(comment())
            while True:
                event = await _next(lambda: _anext(watch), keepalive)
                if event is _TIMEOUT:
                    await channel.write(comment())
                    continue
                if event is None:
                    return
                await channel.write(event_frame(event, watch))
                if isinstance(event, vdgexport.TerminalEvent):  # type: ignore[arg-type]
                    return
        except vdgexport.VdgError as exc:
            await _fail(channel, export_id, exc)


async def _fail(channel: Channel, export_id: str, exc: BaseException) -> None:
    """The watch raised: a 502/503 answer before the stream started, else an error event."""
    data = {"export_id": export_id, "error": error_text(exc)}
    if channel.started:
        await channel.write(frame("error", data))
    else:
        await channel.answer(503 if _closed(exc) else 502, data)


async def all_exports_stream(
    client: vdgexport.Client,
    channel: Channel,
    *,
    keepalive: float,
    reset: bool,
) -> None:
    """Every listed export's events on one stream; exports listed later join it.

    Starts with the current state of every export (what a new watch of each gives first),
    preceded by an ``event: reset`` when the client reconnects (``reset``). Ends only when
    the client is closed.
    """
    send, receive = anyio.create_memory_object_stream[bytes](0)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_discover, client, send, tasks)
        await channel.write(frame("reset", {}) if reset else comment("connected"))
        async with receive:
            while True:
                try:
                    chunk = await _next(receive.receive, keepalive)
                except anyio.EndOfStream:  # the discovery and every watch ended: closed
                    return
                await channel.write(comment() if chunk is _TIMEOUT else chunk)


async def _discover(
    client: vdgexport.Client, send: MemoryObjectSendStream[bytes], tasks: TaskGroup
) -> None:
    """Start a watch for every export listed, now and whenever a new one appears.

    The lists are the client's poller's own (`vdgexport.Client.watch_list`): no request of
    their own, so the list and every watch cost one status request per tick. A list watch
    that gives up (an outage past ``outage_timeout``, a permanent error) is logged and
    opened again, at the poller's pace; a closed client ends the discovery.

    An id is new when it was not listed before, when it names another export (another
    fingerprint), when its watch has ended and a listing went without it (the
    PluginManager restarted: an export listed under it again is another one), or when its
    watch failed (an outage past the client's ``outage_timeout``).
    """
    watching: dict[str, Any] = {}
    live: collections.Counter[str] = collections.Counter()  # running watches per id
    failing = False
    async with send:
        while True:
            try:
                async with client.watch_list() as lists:
                    async for exports in lists:
                        failing = False
                        _start_new(client, exports, watching, live, send, tasks)
            except vdgexport.ClientClosedError:
                return
            except vdgexport.VdgError as exc:
                if not failing:
                    logger.warning("listing exports failed: %s", error_text(exc))
                failing = True


def _start_new(
    client: vdgexport.Client,
    exports: vdgexport.ExportList,
    watching: dict[str, Any],
    live: collections.Counter[str],
    send: MemoryObjectSendStream[bytes],
    tasks: TaskGroup,
) -> None:
    """Start a watch of each export of ``exports`` that is new (see `_discover`)."""
    listed = {export.export_id for export in exports}
    for gone in [i for i in watching if i not in listed and not live[i]]:
        del watching[gone]
    for export in exports:
        if watching.get(export.export_id) != export.fingerprint:
            watching[export.export_id] = export.fingerprint
            live[export.export_id] += 1
            tasks.start_soon(_follow, client, export, send.clone(), live, watching)


async def _follow(
    client: vdgexport.Client,
    export: vdgexport.Export,
    send: MemoryObjectSendStream[bytes],
    live: collections.Counter[str],
    watching: dict[str, Any],
) -> None:
    """Stream one export's watch into ``send``; ``live`` counts it while it runs. A watch
    that gives up (an outage past ``outage_timeout``) is forgotten in ``watching``: the
    next list follows the export anew, its current state first."""
    export_id = export.export_id
    async with send:
        try:
            async with client.watch(export_id) as watch:
                async for event in watch:
                    await send.send(event_frame(event, watch))
        except vdgexport.VdgError as exc:
            if not _closed(exc):
                if watching.get(export_id) == export.fingerprint:
                    del watching[export_id]
                data = {"export_id": export_id, "error": error_text(exc)}
                await send.send(frame("error", data))
        except ValueError:  # an id the client cannot send: that export alone is skipped
            logger.warning("cannot watch export %r", export_id)
        finally:
            live[export_id] -= 1
